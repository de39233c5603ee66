package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// adminSessionTTL is how long an operator stays signed in.
const adminSessionTTL = 8 * time.Hour

// adminSession is an operator's sign-in: its expiry and the CSRF token its
// forms carry.
type adminSession struct {
	exp  time.Time
	csrf string
}

// operator returns the request's live operator session, or false.
func (h *handler) operator(r *http.Request) (adminSession, bool) {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return adminSession{}, false
	}
	k := engine.HashSecret(c.Value)
	h.mu.Lock()
	defer h.mu.Unlock()
	as, ok := h.admins[k]
	if ok && timeNow(h).After(as.exp) {
		delete(h.admins, k)
		return adminSession{}, false
	}
	return as, ok
}

// operatorPost wraps an operator's form action: it needs a live operator
// session and its CSRF token (besides the cross-origin check of every
// unsafe request); without a session the browser goes to the sign-in.
func (h *handler) operatorPost(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		as, ok := h.operator(r)
		if !ok {
			http.Redirect(w, r, "/dashboard/admin", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			got := r.PostFormValue(csrfField)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(as.csrf)) != 1 {
				h.renderError(w, r, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
				return
			}
		}
		fn(w, r)
	}
}

// adminShow is GET /dashboard/admin: the sign-in form for the admin token,
// or the operator's view of every platform.
func (h *handler) adminShow(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil, "Operator", "admin")
	as, ok := h.operator(r)
	if !ok {
		h.render(w, http.StatusOK, "admin_login", v)
		return
	}
	v.CSRF = as.csrf
	v.Notice = adminNotice(r.URL.Query())
	type row struct {
		P                *engine.Platform
		Billing          string
		LiveCus, TestCus int
		LiveMRR          []engine.Money
	}
	var rows []row
	ps, more, err := h.eng.Platforms.List(r.Context(), engine.Page{Limit: 100, StartingAfter: r.URL.Query().Get("after")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, p := range ps {
		rw := row{P: p, Billing: "—"}
		if st, err := h.eng.Customers.Stats(r.Context(), engine.Tenant{PlatformID: p.ID, Mode: engine.Live}); err == nil {
			rw.LiveCus, rw.LiveMRR = st.Customers, st.MRR
		}
		if st, err := h.eng.Customers.Stats(r.Context(), engine.Tenant{PlatformID: p.ID, Mode: engine.Test}); err == nil {
			rw.TestCus = st.Customers
		}
		if b, err := h.eng.Stripe.PlatformBilling(r.Context(), p.ID); err == nil && b.Required {
			rw.Billing = "unpaid"
			if b.Active {
				rw.Billing = "paid"
			}
		}
		rows = append(rows, rw)
	}
	next := ""
	if more && len(ps) > 0 {
		next = ps[len(ps)-1].ID
	}
	v.Data = map[string]any{"Rows": rows, "Next": next}
	h.render(w, http.StatusOK, "admin", v)
}

// adminLogin is POST /dashboard/admin: the admin token, checked by the
// engine as the admin API checks it.
func (h *handler) adminLogin(w http.ResponseWriter, r *http.Request) {
	if err := h.eng.Platforms.AuthenticateAdmin(r.Context(), r.PostFormValue("token")); err != nil {
		v := h.newView(r, nil, "Operator", "admin")
		v.Error = "That is not this server's admin token."
		h.render(w, http.StatusUnauthorized, "admin_login", v)
		return
	}
	tok, csrf := randomHex(), randomHex()
	now := timeNow(h)
	h.mu.Lock()
	for k, as := range h.admins {
		if now.After(as.exp) {
			delete(h.admins, k)
		}
	}
	h.admins[engine.HashSecret(tok)] = adminSession{exp: now.Add(adminSessionTTL), csrf: csrf}
	h.mu.Unlock()
	h.setCookie(w, adminCookie, tok, adminSessionTTL)
	http.Redirect(w, r, "/dashboard/admin", http.StatusSeeOther)
}

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// adminLogout is POST /dashboard/admin/logout.
func (h *handler) adminLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(adminCookie); err == nil {
		h.mu.Lock()
		delete(h.admins, engine.HashSecret(c.Value))
		h.mu.Unlock()
	}
	h.clearCookie(w, adminCookie)
	http.Redirect(w, r, "/dashboard/admin", http.StatusSeeOther)
}

// adminSuspendConfirm is GET /dashboard/admin/platforms/{id}/suspend: the
// confirm step, with a field for the reason.
func (h *handler) adminSuspendConfirm(w http.ResponseWriter, r *http.Request) {
	as, _ := h.operator(r)
	p, err := h.eng.Platforms.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := h.newView(r, nil, "Suspend "+p.Name, "admin")
	v.CSRF = as.csrf
	v.Data = map[string]any{"P": p}
	h.render(w, http.StatusOK, "admin_suspend", v)
}

// adminSuspend is POST /dashboard/admin/platforms/{id}/suspend, through
// the engine as POST /admin/platforms/{id}/suspend.
func (h *handler) adminSuspend(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := h.eng.Platforms.Suspend(r.Context(), id, engine.SuspendInput{Reason: r.PostFormValue("reason")}, nil)
	if engine.ErrorCode(err) == engine.EVALIDATION {
		as, _ := h.operator(r)
		v := h.newView(r, nil, "Suspend platform", "admin")
		v.CSRF = as.csrf
		v.fieldErrors(err)
		v.Form["reason"] = r.PostFormValue("reason")
		if p, err := h.eng.Platforms.Get(r.Context(), id); err == nil {
			v.Data = map[string]any{"P": p}
			h.render(w, http.StatusUnprocessableEntity, "admin_suspend", v)
			return
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/dashboard/admin?suspended="+url.QueryEscape(p.ID), http.StatusSeeOther)
}

// adminResume is POST /dashboard/admin/platforms/{id}/resume.
func (h *handler) adminResume(w http.ResponseWriter, r *http.Request) {
	p, err := h.eng.Platforms.Resume(r.Context(), r.PathValue("id"), nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/dashboard/admin?resumed="+url.QueryEscape(p.ID), http.StatusSeeOther)
}

// adminNotice is the notice after a suspend or resume (POST-redirect-GET):
// only a platform id is taken from the URL, so a link cannot put words on
// the operator's page.
func adminNotice(q url.Values) string {
	id := func(k string) string {
		v := q.Get(k)
		if !strings.HasPrefix(v, "plt_") || len(v) > 64 || strings.Trim(v[4:], "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return ""
		}
		return v
	}
	switch {
	case id("suspended") != "":
		return "Platform " + id("suspended") + " is suspended: its keys are refused, its Stripe webhooks still apply."
	case id("resumed") != "":
		return "Platform " + id("resumed") + " is resumed: its keys work again."
	}
	return ""
}
