package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// adminSessionTTL is how long an operator stays signed in.
const adminSessionTTL = 8 * time.Hour

// operator reports whether the request carries a live operator session.
func (h *handler) operator(r *http.Request) bool {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return false
	}
	k := engine.HashSecret(c.Value)
	h.mu.Lock()
	defer h.mu.Unlock()
	exp, ok := h.admins[k]
	if ok && timeNow(h).After(exp) {
		delete(h.admins, k)
		return false
	}
	return ok
}

// adminShow is GET /dashboard/admin: the sign-in form for the admin token,
// or the operator's view of every platform.
func (h *handler) adminShow(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil, "Operator", "admin")
	if !h.operator(r) {
		h.render(w, http.StatusOK, "admin_login", v)
		return
	}
	v.CSRF = "operator"
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
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	now := timeNow(h)
	h.mu.Lock()
	for k, exp := range h.admins {
		if now.After(exp) {
			delete(h.admins, k)
		}
	}
	h.admins[engine.HashSecret(tok)] = now.Add(adminSessionTTL)
	h.mu.Unlock()
	h.setCookie(w, adminCookie, tok, adminSessionTTL)
	http.Redirect(w, r, "/dashboard/admin", http.StatusSeeOther)
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
