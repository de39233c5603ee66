package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
)

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// credentialsShow is GET /dashboard/credentials: the platform id, the
// publishable keys, the secret keys when they were just made (shown once),
// and every tier with its Stripe price and product ids.
func (h *handler) credentialsShow(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "Credentials", "credentials")
	ctx := r.Context()
	type keyRow struct {
		Mode, PK, Hint string
	}
	var keys []keyRow
	for _, m := range []engine.Mode{engine.Live, engine.Test} {
		ks, err := h.eng.Keys.List(ctx, engine.Tenant{PlatformID: a.sess.PlatformID, Mode: m})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, k := range ks {
			if k.Active(timeNow(h)) && k.ExpiresAt == nil {
				keys = append(keys, keyRow{m.String(), k.PublishableKey, k.SecretHint})
			}
		}
	}
	tiers := map[string]*engine.TierConfig{}
	for _, m := range []engine.Mode{engine.Test, engine.Live} {
		tc, err := h.eng.Tiers.ForTenant(ctx, engine.Tenant{PlatformID: a.sess.PlatformID, Mode: m})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		tiers[m.String()] = tc
	}
	v.Data = map[string]any{"Keys": keys, "Tiers": tiers}
	h.render(w, http.StatusOK, "credentials", v)
}

// overviewShow is GET /dashboard: customers per plan, MRR, subscriptions,
// today's tracks and denials and 30 days of usage, in the session's mode.
func (h *handler) overviewShow(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "Overview", "overview")
	t := a.sess.Tenant()
	st, err := h.eng.Customers.Stats(r.Context(), t)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	days, err := h.eng.Customers.UsageDays(r.Context(), t, time.Time{}, time.Time{}) // the last 30 days
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ch := newChart(days, timeNow(h))
	type planRow struct {
		Plan  string
		Count int
	}
	var plans []planRow
	for _, p := range sortedKeys(st.CustomersPerPlan) {
		plans = append(plans, planRow{p, st.CustomersPerPlan[p]})
	}
	v.Data = map[string]any{"Stats": st, "Plans": plans, "Chart": ch, "Today": ch.today}
	h.render(w, http.StatusOK, "overview", v)
}

// billingCheckout is POST /dashboard/billing/checkout: the platform's own
// subscription on the operator's Stripe (DREAM_PLATFORM_PRICE_ID), as POST
// /api/platform/billing/checkout starts it; the browser goes to Checkout
// and comes back to the overview.
func (h *handler) billingCheckout(w http.ResponseWriter, r *http.Request, a *auth) {
	base := strings.TrimRight(h.cfg.PublicURL, "/")
	res, err := h.eng.Stripe.PlatformCheckout(r.Context(), engine.Tenant{PlatformID: a.sess.PlatformID, Mode: engine.Live},
		engine.PlatformCheckoutInput{SuccessURL: base + "/dashboard", CancelURL: base + "/dashboard"}, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, res.URL, http.StatusSeeOther)
}

// pageSize is the customers listed per page.
const pageSize = 25

// customerList is GET /dashboard/customers: a page after the cursor
// `after`, or the customer found by `q` (an email or a customer id).
func (h *handler) customerList(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "Customers", "customers")
	t := a.sess.Tenant()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	v.Form["q"] = q
	var cs []*engine.Customer
	var more bool
	var err error
	switch {
	case q != "" && strings.Contains(q, "@"):
		cs, _, err = h.eng.Customers.List(r.Context(), t, engine.Page{Limit: 1}, q)
	case q != "":
		var c *engine.Customer
		c, err = h.eng.Customers.Get(r.Context(), t, q)
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			err = nil
		} else if err == nil {
			cs = []*engine.Customer{c}
		}
	default:
		cs, more, err = h.eng.Customers.List(r.Context(), t, engine.Page{Limit: pageSize, StartingAfter: r.URL.Query().Get("after")}, "")
	}
	if engine.ErrorCode(err) == engine.EVALIDATION {
		cs, err = nil, nil
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	next := ""
	if more && len(cs) > 0 {
		next = cs[len(cs)-1].ID
	}
	v.Data = map[string]any{"Customers": cs, "Next": next, "First": r.URL.Query().Get("after") != ""}
	h.render(w, http.StatusOK, "customers", v)
}

// customerShow is GET /dashboard/customers/{id}: plan, usage against its
// limits, subscription, and what can be done to it. Another tenant's
// customer is not found.
func (h *handler) customerShow(w http.ResponseWriter, r *http.Request, a *auth) {
	h.customerPage(w, r, a, http.StatusOK, nil)
}

func (h *handler) customerPage(w http.ResponseWriter, r *http.Request, a *auth, status int, actionErr error) {
	v := h.newView(r, a, "Customer", "customers")
	t := a.sess.Tenant()
	cu, err := h.eng.Meter.CustomerWithUsage(r.Context(), t, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tc, err := h.eng.Tiers.ForTenant(r.Context(), t)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if actionErr != nil {
		v.fieldErrors(actionErr)
	}
	// Past periods: the same engine call as GET /api/usage/history.
	past, err := h.eng.Meter.History(r.Context(), t, engine.HistoryInput{CustomerID: cu.ID, Limit: strconv.Itoa(engine.MaxHistoryLimit)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Title = cu.Email
	data := map[string]any{"C": cu, "Tiers": tc.Tiers, "Past": past}
	if h.eng.Auth.Enabled() { // dream-api's own end-user sign-in: the customer's sessions
		ss, err := h.eng.Auth.Sessions(r.Context(), t, cu.ID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data["Sessions"], data["SignIn"] = ss, true
	}
	v.Data = data
	h.render(w, status, "customer", v)
}

// customerSignOut is POST /dashboard/customers/{id}/sign-out: ends every
// session of the customer (dream-api's own sign-in).
func (h *handler) customerSignOut(w http.ResponseWriter, r *http.Request, a *auth) {
	id := r.PathValue("id")
	n, err := h.eng.Auth.RevokeSessions(r.Context(), a.sess.Tenant(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/customers/"+id, fmt.Sprintf("Signed out everywhere (%d sessions ended).", n))
}

// customerPlanSave is POST /dashboard/customers/{id}/plan.
func (h *handler) customerPlanSave(w http.ResponseWriter, r *http.Request, a *auth) {
	plan := r.PostFormValue("plan")
	id := r.PathValue("id")
	if _, err := h.eng.Customers.Update(r.Context(), a.sess.Tenant(), id, engine.UpdateCustomerInput{Plan: &plan, Source: engine.SourceDashboard}, nil); err != nil {
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			h.fail(w, r, err)
			return
		}
		h.customerPage(w, r, a, http.StatusUnprocessableEntity, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/customers/"+id, "Plan changed to "+plan+".")
}

// customerCheckout is POST /dashboard/customers/{id}/checkout: a Stripe
// Checkout link for a tier, to send the customer.
func (h *handler) customerCheckout(w http.ResponseWriter, r *http.Request, a *auth) {
	id := r.PathValue("id")
	res, err := h.eng.Stripe.Checkout(r.Context(), a.sess.Tenant(), engine.CheckoutInput{CustomerID: id, Tier: r.PostFormValue("tier")}, nil)
	if err != nil {
		h.customerPage(w, r, a, http.StatusUnprocessableEntity, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/customers/"+id, "Checkout link (send it to the customer): "+res.URL)
}

// customerPortal is POST /dashboard/customers/{id}/portal.
func (h *handler) customerPortal(w http.ResponseWriter, r *http.Request, a *auth) {
	id := r.PathValue("id")
	res, err := h.eng.Stripe.Portal(r.Context(), a.sess.Tenant(), engine.PortalInput{CustomerID: id}, nil)
	if err != nil {
		h.customerPage(w, r, a, http.StatusUnprocessableEntity, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/customers/"+id, "Billing portal link: "+res.URL)
}

// customerDeleteConfirm is GET /dashboard/customers/{id}/delete.
func (h *handler) customerDeleteConfirm(w http.ResponseWriter, r *http.Request, a *auth) {
	c, err := h.eng.Customers.Get(r.Context(), a.sess.Tenant(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := h.newView(r, a, "Delete customer", "customers")
	v.Data = map[string]any{"What": "customer " + c.Email + " (" + c.ID + ")", "Action": "/dashboard/customers/" + c.ID + "/delete",
		"Back": "/dashboard/customers/" + c.ID, "Button": "Delete customer",
		"Note": "Their usage history is kept; the customer record and its email are removed."}
	h.render(w, http.StatusOK, "confirm", v)
}

// customerDelete is POST /dashboard/customers/{id}/delete.
func (h *handler) customerDelete(w http.ResponseWriter, r *http.Request, a *auth) {
	if err := h.eng.Customers.Delete(r.Context(), a.sess.Tenant(), r.PathValue("id"), nil); err != nil {
		h.fail(w, r, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/customers", "Customer deleted.")
}

// tiersShow is GET /dashboard/tiers.
func (h *handler) tiersShow(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "Tiers", "tiers")
	tc, err := h.eng.Tiers.ForTenant(r.Context(), a.sess.Tenant())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Data = map[string]any{"Rows": tierRows(tc)}
	h.render(w, http.StatusOK, "tiers", v)
}

// tiersSave is POST /dashboard/tiers: the whole config, as PUT
// /api/platform/tiers takes it (Stripe products and prices synced the
// same way); errors next to their fields.
func (h *handler) tiersSave(w http.ResponseWriter, r *http.Request, a *auth) {
	rows, in, rowOf, fields := parseTiers(r)
	var err error
	if len(fields) == 0 {
		_, err = h.eng.Tiers.Put(r.Context(), a.sess.Tenant(), in, nil)
		if err == nil {
			h.redirect(w, r, a, "/dashboard/tiers", "Tiers saved.")
			return
		}
	}
	v := h.newView(r, a, "Tiers", "tiers")
	v.Fields = fields
	if err != nil {
		v.fieldErrors(err)
		// The engine numbers the tiers it got; the form numbers its rows.
		remapped := map[string]string{}
		for k, msg := range v.Fields {
			var i int
			var rest string
			if n, _ := fmtSscanTier(k, &i, &rest); n == 2 && i < len(rowOf) {
				k = tierField(rowOf[i], rest)
			}
			remapped[k] = msg
		}
		v.Fields = remapped
		if msg := v.Fields["tiers"]; msg != "" {
			v.Error = msg
		}
	} else {
		v.Error = "Please correct the fields marked below."
	}
	if len(rows) == 0 || rows[len(rows)-1].Name != "" {
		rows = append(rows, tierRow{Index: len(rows), Currency: "usd", Interval: "month", RateLimit: "0"})
	}
	v.Data = map[string]any{"Rows": rows}
	h.render(w, http.StatusUnprocessableEntity, "tiers", v)
}

// keyList is GET /dashboard/keys: the session mode's keys.
func (h *handler) keyList(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "API keys", "keys")
	ks, err := h.eng.Keys.List(r.Context(), a.sess.Tenant())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	slices.Reverse(ks)
	v.Data = map[string]any{"Keys": ks, "Now": timeNow(h)}
	h.render(w, http.StatusOK, "keys", v)
}

// keyCreate is POST /dashboard/keys: a new key pair, its secret shown once.
func (h *handler) keyCreate(w http.ResponseWriter, r *http.Request, a *auth) {
	kp, err := h.eng.Keys.Create(r.Context(), a.sess.Tenant(), engine.CreateKeyInput{}, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.keySecret(w, r, a, kp, "New key created.")
}

func (h *handler) keySecret(w http.ResponseWriter, r *http.Request, a *auth, kp *engine.KeyPair, notice string) {
	s := &secrets{KeyMode: a.sess.Mode.String()}
	if a.sess.Mode == engine.Live {
		s.LivePK, s.LiveSK = kp.PublishableKey, kp.SecretKey
	} else {
		s.TestPK, s.TestSK = kp.PublishableKey, kp.SecretKey
	}
	h.setFlash(a, flash{Notice: notice, Secrets: s})
	http.Redirect(w, r, "/dashboard/keys", http.StatusSeeOther)
}

// keyRotate is POST /dashboard/keys/{id}/rotate: a new secret for the same
// publishable key; the old one keeps working for the grace period.
func (h *handler) keyRotate(w http.ResponseWriter, r *http.Request, a *auth) {
	in := engine.CreateKeyInput{Rotate: r.PathValue("id")}
	if g := r.PostFormValue("grace"); g != "" {
		var hours int
		if _, err := fmtSscan(g, &hours); err != nil {
			h.fail(w, r, engine.Errorf(engine.EVALIDATION, "The grace period must be a whole number of hours."))
			return
		}
		in.GracePeriodHours = &hours
	}
	kp, err := h.eng.Keys.Create(r.Context(), a.sess.Tenant(), in, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.keySecret(w, r, a, kp, "Key rotated: the old secret keeps working until its grace period ends.")
}

// keyRevokeConfirm is GET /dashboard/keys/{id}/revoke.
func (h *handler) keyRevokeConfirm(w http.ResponseWriter, r *http.Request, a *auth) {
	ks, err := h.eng.Keys.List(r.Context(), a.sess.Tenant())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	i := slices.IndexFunc(ks, func(k *engine.Key) bool { return k.ID == id })
	if i < 0 {
		h.fail(w, r, engine.Errorf(engine.ENOTFOUND, "No key %s.", id))
		return
	}
	v := h.newView(r, a, "Revoke key", "keys")
	v.Data = map[string]any{"What": "the key " + ks[i].SecretHint, "Action": "/dashboard/keys/" + id + "/revoke",
		"Back": "/dashboard/keys", "Button": "Revoke key",
		"Note": "Its secret stops working at once: every backend still using it gets 401."}
	h.render(w, http.StatusOK, "confirm", v)
}

// keyRevoke is POST /dashboard/keys/{id}/revoke.
func (h *handler) keyRevoke(w http.ResponseWriter, r *http.Request, a *auth) {
	if _, err := h.eng.Keys.Revoke(r.Context(), a.sess.Tenant(), r.PathValue("id"), nil); err != nil {
		h.fail(w, r, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/keys", "Key revoked.")
}

// stripeShow is GET /dashboard/stripe: the connection of the session's
// mode and the webhook URL to configure. Stripe sends the browser back here
// from Connect onboarding: ?onboarding=return when the developer finished
// or left it, ?onboarding=refresh when the link had expired or was used
// (a fresh one is a POST to /dashboard/stripe/onboard, with the CSRF token:
// a GET changes nothing).
func (h *handler) stripeShow(w http.ResponseWriter, r *http.Request, a *auth) {
	switch r.URL.Query().Get("onboarding") {
	case "return":
		h.stripePage(w, r, a, http.StatusOK, "Back from Stripe. Stripe tells dream-api when the account's details are submitted and charges are enabled; the state below follows.", nil)
	case "refresh":
		h.stripePage(w, r, a, http.StatusOK, "That onboarding link has expired or was already used: continue onboarding below for a fresh one.", nil)
	default:
		h.stripePage(w, r, a, http.StatusOK, "", nil)
	}
}

// stripePage renders the Stripe page with a notice, or the error of an
// action (its fields marked).
func (h *handler) stripePage(w http.ResponseWriter, r *http.Request, a *auth, status int, notice string, actionErr error) {
	v := h.newView(r, a, "Stripe", "stripe")
	st, err := h.eng.Stripe.Status(r.Context(), a.sess.Tenant())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if notice != "" {
		v.Notice = notice
	}
	if actionErr != nil {
		v.fieldErrors(actionErr)
	}
	viaConnect := st.Method != nil && *st.Method == engine.StripeViaConnect
	v.Data = map[string]any{"S": st, "ViaConnect": viaConnect,
		"Webhook": strings.TrimRight(h.cfg.PublicURL, "/") + "/webhook/stripe/" + a.sess.PlatformID,
		"Events":  h.stripeEvents(r, a)}
	h.render(w, status, "stripe", v)
}

// stripeEvents are the tenant's recent Stripe events for the Stripe page,
// newest first; none (logged) when they cannot be read, so that the rest of
// the page still shows.
func (h *handler) stripeEvents(r *http.Request, a *auth) []*engine.StripeEventRecord {
	evs, err := h.eng.Stripe.RecentEvents(r.Context(), a.sess.Tenant())
	if err != nil {
		h.log.Error("dashboard: recent stripe events", "platform", a.sess.PlatformID, "err", err)
	}
	return evs
}

// stripeConnect is POST /dashboard/stripe/connect: by pasting a secret key
// and the webhook signing secret (as POST /api/platform/stripe/connect).
// Without a key it onboards through Stripe Connect, as stripeOnboard.
func (h *handler) stripeConnect(w http.ResponseWriter, r *http.Request, a *auth) {
	in := engine.ConnectInput{SecretKey: strings.TrimSpace(r.PostFormValue("secretKey")), WebhookSecret: strings.TrimSpace(r.PostFormValue("webhookSecret"))}
	if in.SecretKey == "" && in.WebhookSecret == "" {
		h.stripeOnboard(w, r, a)
		return
	}
	if _, err := h.eng.Stripe.Connect(r.Context(), a.sess.Tenant(), in, nil); err != nil {
		h.stripePage(w, r, a, http.StatusUnprocessableEntity, "", err)
		return
	}
	h.redirect(w, r, a, "/dashboard/stripe", "Stripe connected.")
}

// stripeOnboard is POST /dashboard/stripe/onboard ("Connect with Stripe",
// and "Continue onboarding" for a link that expired): a Standard account on
// the operator's Stripe the first time, then a fresh Account Link for it,
// to which the browser is sent (303). Stripe sends it back to
// /dashboard/stripe?onboarding=return, or ?onboarding=refresh when the link
// has expired.
func (h *handler) stripeOnboard(w http.ResponseWriter, r *http.Request, a *auth) {
	base := strings.TrimRight(h.cfg.PublicURL, "/")
	if base == "" { // a test's handler without a configured URL
		base = "http://" + r.Host
	}
	in := engine.ConnectInput{ReturnURL: base + "/dashboard/stripe?onboarding=return", RefreshURL: base + "/dashboard/stripe?onboarding=refresh"}
	res, err := h.eng.Stripe.Connect(r.Context(), a.sess.Tenant(), in, nil)
	if err != nil {
		status := http.StatusUnprocessableEntity
		switch engine.ErrorCode(err) {
		case engine.ECONFLICT:
			status = http.StatusConflict
		case engine.EUPSTREAM:
			status = http.StatusBadGateway
		case engine.EINTERNAL:
			h.fail(w, r, err)
			return
		}
		h.stripePage(w, r, a, status, "", err)
		return
	}
	if res.URL == nil { // Connect answers a link; be safe all the same
		h.redirect(w, r, a, "/dashboard/stripe", "")
		return
	}
	http.Redirect(w, r, *res.URL, http.StatusSeeOther)
}

// settingsShow is GET /dashboard/settings.
func (h *handler) settingsShow(w http.ResponseWriter, r *http.Request, a *auth) {
	h.settingsPage(w, r, a, http.StatusOK, nil)
}

func (h *handler) settingsPage(w http.ResponseWriter, r *http.Request, a *auth, status int, err error) {
	v := h.newView(r, a, "Settings", "settings")
	if err != nil {
		v.fieldErrors(err)
	}
	cors, cerr := h.eng.Platforms.CORS(r.Context(), a.sess.PlatformID)
	if cerr != nil {
		h.fail(w, r, cerr)
		return
	}
	if _, ok := v.Form["origins"]; !ok {
		v.Form["origins"] = strings.Join(cors.AllowedOrigins, "\n")
	}
	h.render(w, status, "settings", v)
}

// corsSave is POST /dashboard/settings/cors.
func (h *handler) corsSave(w http.ResponseWriter, r *http.Request, a *auth) {
	in := engine.CORSConfig{AllowedOrigins: []string{}}
	for _, o := range strings.Fields(r.PostFormValue("origins")) {
		in.AllowedOrigins = append(in.AllowedOrigins, o)
	}
	if _, err := h.eng.Platforms.SetCORS(r.Context(), a.sess.Tenant(), in, nil); err != nil {
		h.settingsPage(w, r, a, http.StatusUnprocessableEntity, err)
		return
	}
	h.redirect(w, r, a, "/dashboard/settings", "Allowed origins saved.")
}

// passwordSave is POST /dashboard/settings/password: every other session
// ends; this browser gets a new one.
func (h *handler) passwordSave(w http.ResponseWriter, r *http.Request, a *auth) {
	if err := h.eng.Developers.ChangePassword(r.Context(), a.dev.ID, r.PostFormValue("current"), r.PostFormValue("password")); err != nil {
		h.settingsPage(w, r, a, http.StatusUnprocessableEntity, err)
		return
	}
	d, err := h.eng.Developers.Get(r.Context(), a.dev.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	token, _, err := h.eng.Developers.StartSession(r.Context(), d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, sessionCookie, token, engine.DefaultSessionAbsolute)
	h.redirect(w, r, &auth{token: token}, "/dashboard/settings", "Password changed; other sessions were signed out.")
}
