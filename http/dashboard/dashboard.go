// Package dashboard serves the developer's dashboard under /dashboard:
// server-rendered html/template pages (embedded), sessions kept by the
// engine, and every action done through the same engine services as the
// API handlers. Pages work without JavaScript; static/app.js only adds
// copy buttons.
//
// Shape (after miniflux): one file per page action, named noun_verb, each
// a method of handler; every route in routes.go; form parsing in form.go;
// a POST that changes something redirects (POST-redirect-GET), one that
// fails validation renders its form again with the errors.
//
// Cross-site request forgery: every unsafe request passes Go's
// http.CrossOriginProtection (Sec-Fetch-Site / Origin), and every form of
// a signed-in page carries the session's token, checked before any change.
package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dream-api/dream-api/engine"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the dashboard. Engine is required.
type Config struct {
	Engine *engine.Engine
	// PublicURL is the server's public base URL (DREAM_PUBLIC_URL): the
	// session cookie is Secure when it is https, and webhook URLs are
	// shown under it.
	PublicURL string
	// SignupClosed refuses /dashboard/signup (DREAM_SIGNUP=closed): only
	// the operator creates accounts.
	SignupClosed bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of "today" and key expiry; defaults to time.Now.
	Now func() time.Time
}

const (
	sessionCookie = "dream_session"
	adminCookie   = "dream_admin"
	csrfField     = "csrf"
)

// handler holds what every page action needs. Safe for concurrent use.
type handler struct {
	eng    *engine.Engine
	cfg    Config
	log    *slog.Logger
	secure bool
	views  *views
	cop    *http.CrossOriginProtection
	mux    *http.ServeMux

	// flashes are one-shot messages and secrets for a session's next
	// page (secrets are shown once: they live here, in memory, until that
	// page is rendered, and never in the store).
	mu      sync.Mutex
	flashes map[[32]byte]flash
	// admins are operator sessions (/dashboard/admin) by token hash.
	admins map[[32]byte]adminSession
}

// flash is what a redirect carries to the next page.
type flash struct {
	Notice  string
	Secrets *secrets
	at      time.Time
}

// flashTTL is how long a flash waits for its page: one never shown (the
// browser went away) is forgotten, secrets included.
const flashTTL = 10 * time.Minute

// secrets are keys shown once.
type secrets struct {
	PlatformID  string
	LivePK      string
	LiveSK      string
	TestPK      string
	TestSK      string
	KeyMode     string // a single key: its mode
	FromRotated bool
	// A webhook endpoint's signing secret (new or rotated), its id and URL.
	WebhookID     string
	WebhookURL    string
	WebhookSecret string
}

// New returns the dashboard's handler for every path under /dashboard.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler{
		eng: cfg.Engine, cfg: cfg, log: cfg.Logger, secure: strings.HasPrefix(cfg.PublicURL, "https://"),
		views: mustParseViews(), cop: http.NewCrossOriginProtection(), mux: http.NewServeMux(),
		flashes: map[[32]byte]flash{}, admins: map[[32]byte]adminSession{},
	}
	h.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, http.StatusForbidden, "This form was sent from another site, so nothing was changed.")
	}))
	h.routes()
	return h
}

// ServeHTTP sets the security headers of every page and refuses
// cross-origin unsafe requests before routing.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"form-action 'self' https://*.stripe.com; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	h.cop.Handler(h.mux).ServeHTTP(w, r)
}

// ctxKey keys the request context's signed-in state.
type ctxKey struct{}

// auth is the signed-in developer of a request.
type auth struct {
	token string
	sess  *engine.Session
	dev   *engine.Developer
}

func authOf(r *http.Request) *auth { a, _ := r.Context().Value(ctxKey{}).(*auth); return a }

// signedIn wraps a page that needs a session: without one the browser goes
// to the login page; a POST must carry the session's CSRF token.
func (h *handler) signedIn(fn func(w http.ResponseWriter, r *http.Request, a *auth)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
			return
		}
		sess, dev, err := h.eng.Developers.Authenticate(r.Context(), c.Value)
		if engine.ErrorCode(err) == engine.EINVALIDAPIKEY {
			h.clearCookie(w, sessionCookie)
			http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
			return
		} else if err != nil {
			h.fail(w, r, err)
			return
		}
		if r.Method == http.MethodPost {
			got := r.PostFormValue(csrfField)
			if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 || got == "" {
				h.renderError(w, r, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.")
				return
			}
		}
		a := &auth{token: c.Value, sess: sess, dev: dev}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, a))
		if r.Method == http.MethodPost && !whileSuspended[r.URL.Path] {
			// A platform the operator suspended is read-only here, as its
			// keys are refused by the API.
			p, err := h.eng.Platforms.Get(r.Context(), sess.PlatformID)
			if err != nil && engine.ErrorCode(err) != engine.ENOTFOUND {
				h.fail(w, r, err)
				return
			}
			if err == nil && p.Suspended() {
				h.renderError(w, r, http.StatusForbidden, "This platform is suspended by the operator, so nothing can be changed; contact the operator of this server.")
				return
			}
		}
		fn(w, r, a)
	}
}

// whileSuspended are the forms that work while the platform is suspended:
// they act on the developer's account or session, or change nothing (a
// plugin dry-run).
var whileSuspended = map[string]bool{
	"/dashboard/logout": true, "/dashboard/switch": true,
	"/dashboard/settings/password": true, "/dashboard/settings/signout-everywhere": true,
	"/dashboard/plugin/dry-run": true,
}

func (h *handler) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/dashboard", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.secure, MaxAge: int(maxAge.Seconds())})
}

func (h *handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/dashboard", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.secure, MaxAge: -1})
}

// setFlash keeps f for the session's next page.
func (h *handler) setFlash(a *auth, f flash) {
	now := timeNow(h)
	f.at = now
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, old := range h.flashes {
		if now.Sub(old.at) > flashTTL {
			delete(h.flashes, k)
		}
	}
	h.flashes[engine.HashSecret(a.token)] = f
}

// takeFlash returns and forgets the session's flash.
func (h *handler) takeFlash(a *auth) flash {
	k := engine.HashSecret(a.token)
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.flashes[k]
	delete(h.flashes, k)
	if timeNow(h).Sub(f.at) > flashTTL {
		return flash{}
	}
	return f
}

// redirect ends a successful POST (POST-redirect-GET) with a notice.
func (h *handler) redirect(w http.ResponseWriter, r *http.Request, a *auth, to, notice string) {
	if notice != "" {
		h.setFlash(a, flash{Notice: notice})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// clientIP is the address sign-in throttling counts: the connection's
// (a proxy's X-Forwarded-For is not trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fail renders an engine error as a page: not found as 404, anything
// internal as a generic message (logged).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadRequest
	switch engine.ErrorCode(err) {
	case engine.ENOTFOUND:
		status = http.StatusNotFound
	case engine.EINTERNAL:
		status = http.StatusInternalServerError
		h.log.Error("dashboard", "path", r.URL.Path, "err", err)
	case engine.ERATELIMITED:
		status = http.StatusTooManyRequests
	case engine.EUPSTREAM:
		status = http.StatusBadGateway
	}
	h.renderError(w, r, status, engine.ErrorMessage(err))
}
