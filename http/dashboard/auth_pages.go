package dashboard

import (
	"net/http"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// signupShow is GET /dashboard/signup.
func (h *handler) signupShow(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil, "Create your account", "")
	if h.cfg.SignupClosed {
		v.Error = "Sign-up is closed on this server: ask its operator for an account."
	}
	h.render(w, http.StatusOK, "signup", v)
}

// signupSave is POST /dashboard/signup: the account and its first platform,
// then the credentials page with the secrets shown once.
func (h *handler) signupSave(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil, "Create your account", "")
	if h.cfg.SignupClosed {
		v.Error = "Sign-up is closed on this server: ask its operator for an account."
		h.render(w, http.StatusForbidden, "signup", v)
		return
	}
	in := parseSignup(r)
	v.Form["email"], v.Form["name"] = in.Email, in.PlatformName
	nd, err := h.eng.Developers.Signup(r.Context(), in, nil)
	if err != nil {
		v.fieldErrors(err)
		if f := v.Fields["platformName"]; f != "" {
			v.Fields["name"] = f
		}
		status := http.StatusUnprocessableEntity
		switch engine.ErrorCode(err) {
		case engine.ECONFLICT:
			v.Fields["email"] = "already has an account: sign in instead"
		case engine.ERATELIMITED:
			status = http.StatusTooManyRequests
		case engine.EINTERNAL:
			h.fail(w, r, err)
			return
		}
		h.render(w, status, "signup", v)
		return
	}
	token, _, err := h.eng.Developers.StartSession(r.Context(), nd.Developer)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, sessionCookie, token, engine.DefaultSessionAbsolute)
	np := nd.Platform
	h.setFlash(&auth{token: token}, flash{Notice: "Welcome! Your platform is ready.", Secrets: &secrets{
		PlatformID: np.Platform.ID, LivePK: np.PublishableKey, LiveSK: np.SecretKey, TestPK: np.Test.PublishableKey, TestSK: np.Test.SecretKey,
	}})
	http.Redirect(w, r, "/dashboard/credentials", http.StatusSeeOther)
}

// loginShow is GET /dashboard/login.
func (h *handler) loginShow(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "login", h.newView(r, nil, "Sign in", ""))
}

// loginCheck is POST /dashboard/login. A wrong email and a wrong password
// read the same.
func (h *handler) loginCheck(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil, "Sign in", "")
	email := r.PostFormValue("email")
	v.Form["email"] = email
	token, _, err := h.eng.Developers.SignIn(r.Context(), engine.SignInInput{Email: email, Password: r.PostFormValue("password"), IP: clientIP(r)})
	if err != nil {
		status := http.StatusUnauthorized
		if engine.ErrorCode(err) == engine.ERATELIMITED {
			status = http.StatusTooManyRequests
		} else if engine.ErrorCode(err) == engine.EINTERNAL {
			h.fail(w, r, err)
			return
		}
		v.Error = engine.ErrorMessage(err)
		h.render(w, status, "login", v)
		return
	}
	h.setCookie(w, sessionCookie, token, engine.DefaultSessionAbsolute)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// logout is POST /dashboard/logout: the session is deleted in the store.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, a *auth) {
	if err := h.eng.Developers.SignOut(r.Context(), a.token); err != nil {
		h.fail(w, r, err)
		return
	}
	h.clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}

// signOutEverywhere is POST /dashboard/settings/signout-everywhere.
func (h *handler) signOutEverywhere(w http.ResponseWriter, r *http.Request, a *auth) {
	if err := h.eng.Developers.SignOutEverywhere(r.Context(), a.dev.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}

// platformSwitch is POST /dashboard/switch: another of the developer's
// platforms, or the other mode.
func (h *handler) platformSwitch(w http.ResponseWriter, r *http.Request, a *auth) {
	pid := r.PostFormValue("platform")
	if pid == "" {
		pid = a.sess.PlatformID
	}
	mode, err := engine.ParseMode(r.PostFormValue("mode"))
	if err != nil {
		mode = a.sess.Mode
	}
	if err := h.eng.Developers.Switch(r.Context(), a.sess, a.dev, pid, mode); err != nil {
		h.fail(w, r, err)
		return
	}
	back := r.PostFormValue("back")
	if !isDashboardPath(back) {
		back = "/dashboard"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// isDashboardPath keeps redirects on the dashboard.
func isDashboardPath(p string) bool {
	return (p == "/dashboard" || strings.HasPrefix(p, "/dashboard/") || strings.HasPrefix(p, "/dashboard?")) &&
		!strings.ContainsAny(p, "\\\r\n")
}

// platformCreate is POST /dashboard/platforms: another platform of the
// developer's, whose secrets are shown once on its credentials page.
func (h *handler) platformCreate(w http.ResponseWriter, r *http.Request, a *auth) {
	np, err := h.eng.Developers.AddPlatform(r.Context(), a.dev.ID, engine.CreatePlatformInput{Name: r.PostFormValue("name")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.eng.Developers.Get(r.Context(), a.dev.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.eng.Developers.Switch(r.Context(), a.sess, d, np.Platform.ID, engine.Test); err != nil {
		h.fail(w, r, err)
		return
	}
	h.setFlash(a, flash{Notice: "Platform " + np.Platform.Name + " created.", Secrets: &secrets{
		PlatformID: np.Platform.ID, LivePK: np.PublishableKey, LiveSK: np.SecretKey, TestPK: np.Test.PublishableKey, TestSK: np.Test.SecretKey,
	}})
	http.Redirect(w, r, "/dashboard/credentials", http.StatusSeeOther)
}
