package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/billing"
)

// Stripe billing is configured by
//
//	STRIPE_SECRET_KEY        the operator's Stripe key (sk_… or rk_…): Stripe
//	                         Connect onboarding in the key's mode, and the
//	                         operator's billing of platforms; optional
//	STRIPE_TEST_SECRET_KEY   optional: a test-mode operator key as well, when
//	                         STRIPE_SECRET_KEY is a live one
//	STRIPE_WEBHOOK_SECRET    signing secret(s) of /webhook/stripe, comma-
//	                         separated (a Connect endpoint's, the account
//	                         endpoint's); optional
//	STRIPE_API_BASE          Stripe's API (default https://api.stripe.com);
//	                         tests point it at stripe-mock
//	DREAM_PLATFORM_PRICE_ID  the operator's price platforms subscribe to;
//	                         when set, live keys work only while a platform's
//	                         subscription is active
//
// Connecting by key needs none of them: a platform's own keys are stored
// sealed with the master key.
func (m *Main) stripeConfig(sealer *engine.Sealer) (engine.StripeConfig, error) {
	keys := map[engine.Mode]string{}
	if k := strings.TrimSpace(m.Getenv("STRIPE_SECRET_KEY")); k != "" {
		mode, ok := engine.StripeKeyMode(k)
		if !ok {
			return engine.StripeConfig{}, errors.New("STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_live_…, sk_test_…, rk_live_…, rk_test_…)")
		}
		keys[mode] = k
	}
	if k := strings.TrimSpace(m.Getenv("STRIPE_TEST_SECRET_KEY")); k != "" {
		if mode, ok := engine.StripeKeyMode(k); !ok || mode != engine.Test {
			return engine.StripeConfig{}, errors.New("STRIPE_TEST_SECRET_KEY must be a test-mode Stripe key (sk_test_… or rk_test_…)")
		}
		if keys[engine.Test] != "" && keys[engine.Test] != k {
			return engine.StripeConfig{}, errors.New("STRIPE_SECRET_KEY and STRIPE_TEST_SECRET_KEY are two different test-mode keys; set one")
		}
		keys[engine.Test] = k
	}
	var secrets []string
	for _, s := range strings.Split(m.Getenv("STRIPE_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	price := strings.TrimSpace(m.Getenv("DREAM_PLATFORM_PRICE_ID"))
	if price != "" && len(keys) == 0 {
		return engine.StripeConfig{}, errors.New("DREAM_PLATFORM_PRICE_ID needs STRIPE_SECRET_KEY: platforms subscribe on the operator's Stripe account")
	}
	base := strings.TrimSpace(m.Getenv("STRIPE_API_BASE"))
	if base == "" {
		base = billing.DefaultAPIBase
	} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return engine.StripeConfig{}, fmt.Errorf("STRIPE_API_BASE %q is not an absolute http(s) URL", base)
	}
	var connect []string
	for _, md := range []engine.Mode{engine.Live, engine.Test} {
		if keys[md] != "" {
			connect = append(connect, md.String())
		}
	}
	m.log.Info("Stripe configured", "apiBase", base, "connectModes", connect,
		"webhookSecrets", len(secrets), "operatorBilling", price != "")
	return engine.StripeConfig{
		Billing:         billing.New(&billing.Options{APIBase: base, Logger: m.log.With("component", "stripe")}),
		Sealer:          sealer,
		OperatorKeys:    keys,
		WebhookSecrets:  secrets,
		PlatformPriceID: price,
		PublicURL:       func() string { return m.Config.PublicURL },
	}, nil
}
