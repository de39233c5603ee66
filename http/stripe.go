package http

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/dream-api/dream-api/engine"
)

// stripeRoutes serves Stripe billing: connections, Checkout, the portal,
// webhooks, stats and the operator's billing of platforms.
func (s *Server) stripeRoutes() {
	s.handle("GET", "/api/platform/stripe", s.secret(s.getStripe))
	s.handle("DELETE", "/api/platform/stripe", s.secret(s.deleteStripe))
	s.handle("POST", "/api/platform/stripe/connect", s.secret(s.connectStripe))
	s.handle("POST", "/api/create-checkout", s.secret(s.createCheckout))
	s.handle("POST", "/api/customer-portal", s.secret(s.customerPortal))
	s.handle("GET", "/api/platform/stats", s.secret(s.platformStats))
	// A platform whose live keys are paused for want of a subscription
	// starts or looks at it with any key.
	s.handle("GET", "/api/platform/billing", s.secretAnyMode(s.getPlatformBilling))
	s.handle("POST", "/api/platform/billing/checkout", s.secretAnyMode(s.platformCheckout))
	s.handle("POST", "/webhook/stripe", s.stripeWebhook)
	s.handle("POST", "/webhook/stripe/{platformId}", s.stripePlatformWebhook)
}

// liveAllowed refuses a live key of a platform whose subscription on the
// operator's account is not active (operator billing). Test keys always
// pass.
func (s *Server) liveAllowed(ctx context.Context, t engine.Tenant) error {
	if t.Mode != engine.Live || s.eng.Stripe == nil {
		return nil
	}
	return s.eng.Stripe.LiveAllowed(ctx, t.PlatformID)
}

// secretAnyMode authenticates a secret key like secret, without the
// operator-billing pause of live keys.
func (s *Server) secretAnyMode(h secretHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok := bearer(r)
		if tok == "" {
			return engine.Errorf(engine.EINVALIDAPIKEY, "Missing API key: send `Authorization: Bearer sk_…`.")
		}
		k, err := s.eng.Keys.Authenticate(r.Context(), tok)
		if err != nil {
			return err
		}
		if err := s.eng.AllowRequest(k.PlatformID); err != nil { // the platform's requests-per-second quota
			return err
		}
		return h(w, r, k)
	}
}

func (s *Server) getStripe(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	st, err := s.eng.Stripe.Status(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) deleteStripe(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	st, err := s.eng.Stripe.Disconnect(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) connectStripe(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, true, ok200, func(in engine.ConnectInput, idem *engine.Idempotency) (*engine.StripeConnected, error) {
		return s.eng.Stripe.Connect(r.Context(), k.Tenant(), in, idem)
	})
}

func (s *Server) createCheckout(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, false, ok200, func(in engine.CheckoutInput, idem *engine.Idempotency) (*engine.CheckoutResult, error) {
		if in.CustomerID == "" {
			in.CustomerID = r.Header.Get("X-User-Id")
		}
		return s.eng.Stripe.Checkout(r.Context(), k.Tenant(), in, idem)
	})
}

func (s *Server) customerPortal(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	optional := r.Header.Get("X-User-Id") != ""
	return command(w, r, optional, ok200, func(in engine.PortalInput, idem *engine.Idempotency) (*engine.PortalResult, error) {
		if in.CustomerID == "" {
			in.CustomerID = r.Header.Get("X-User-Id")
		}
		return s.eng.Stripe.Portal(r.Context(), k.Tenant(), in, idem)
	})
}

func (s *Server) platformStats(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	var v engine.Validation
	from, to := statsDate(&v, r, "from"), statsDate(&v, r, "to")
	if err := v.Err(); err != nil {
		return err
	}
	days, err := s.eng.Customers.UsageDays(r.Context(), k.Tenant(), from, to)
	if err != nil {
		return err
	}
	st, err := s.eng.Customers.Stats(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		*engine.PlatformStats
		Days []engine.DayUsage `json:"days"`
	}{st, days})
	return nil
}

// statsDate reads a YYYY-MM-DD query parameter; zero when absent.
func statsDate(v *engine.Validation, r *http.Request, name string) time.Time {
	q := r.URL.Query().Get(name)
	if q == "" {
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, q)
	if err != nil {
		v.Add(name, "must be a date such as 2026-12-01")
	}
	return d
}

func (s *Server) getPlatformBilling(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	st, err := s.eng.Stripe.PlatformBilling(r.Context(), k.PlatformID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) platformCheckout(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, true, ok200, func(in engine.PlatformCheckoutInput, idem *engine.Idempotency) (*engine.CheckoutResult, error) {
		return s.eng.Stripe.PlatformCheckout(r.Context(), k.Tenant(), in, idem)
	})
}

// stripeWebhook receives Connect events (and the operator's own), signed
// with STRIPE_WEBHOOK_SECRET. The body is read as is: the signature is over
// its bytes. Nothing authenticates the sender before the body is read, so
// it takes one of Limits.MaxUnauthenticatedBodies.
func (s *Server) stripeWebhook(w http.ResponseWriter, r *http.Request) error {
	body, err := s.limits.readUnauthenticated(r)
	if err != nil {
		return err
	}
	res, err := s.eng.Stripe.ConnectWebhook(r.Context(), body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// stripePlatformWebhook receives the events of a platform connected by key,
// signed with its own webhook secret (read like stripeWebhook's).
func (s *Server) stripePlatformWebhook(w http.ResponseWriter, r *http.Request) error {
	body, err := s.limits.readUnauthenticated(r)
	if err != nil {
		return err
	}
	res, err := s.eng.Stripe.PlatformWebhook(r.Context(), mux.Vars(r)["platformId"], body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
