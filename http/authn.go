package http

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dream-api/dream-api/engine"
)

// End-user sign-in without Clerk (engine/auth.go): a platform's front end
// signs its customers in with the platform's publishable key (`?pk=`, the
// body's publishableKey or `Authorization: Bearer pk_…`; never a secret
// key) and gets dream-api's own access tokens, which /api/me… accept.
// The developer's backend makes reset tokens with its secret key and
// verifies access tokens itself with /.well-known/jwks.json.
//
// The calls with a publishable key check an Idempotency-Key like every
// POST but never record or replay one: each answers new tokens, which are
// never stored, and a replayed refresh would defeat the detection of a
// reused refresh token.

// authCORSRoutes are answered to browsers of the platforms' origins (cors.go).
var authCORSRoutes = []string{"/api/auth/sign-in", "/api/auth/refresh", "/api/auth/sign-out", "/api/auth/password-reset"}

func init() {
	for _, p := range authCORSRoutes {
		corsRoutes[p] = true
	}
}

// authRoutes adds the sign-in endpoints and their counters in /metrics.
func (s *Server) authRoutes(reg prometheus.Registerer) {
	s.handle("POST", "/api/auth/sign-in", s.signIn)
	s.handle("POST", "/api/auth/refresh", s.refresh)
	s.handle("POST", "/api/auth/sign-out", s.signOut)
	s.handle("POST", "/api/auth/password-reset", s.resetPassword)
	for _, p := range authCORSRoutes {
		s.handle("OPTIONS", p, s.preflight("POST"))
	}
	s.handle("POST", "/api/customers/{id}/password-reset", s.secret(s.createPasswordReset))
	s.handle("GET", "/api/customers/{id}/sessions", s.secret(s.listSessions))
	s.handle("DELETE", "/api/customers/{id}/sessions", s.secret(s.revokeSessions))
	s.handle("GET", "/.well-known/jwks.json", s.jwks)
	registerAuthMetrics(reg, &s.eng.Auth.Counters)
}

// registerAuthMetrics publishes the engine's sign-in counters as
// dream_auth_events_total{event, outcome}.
func registerAuthMetrics(reg prometheus.Registerer, c *engine.AuthCounters) {
	for _, m := range []struct {
		event, outcome string
		n              interface{ Load() int64 }
	}{
		{"sign_in", "ok", &c.SignIns}, {"sign_in", "failed", &c.SignInFailures}, {"sign_in", "throttled", &c.Throttled},
		{"refresh", "ok", &c.Refreshes}, {"refresh", "failed", &c.RefreshFailures}, {"refresh", "reused", &c.RefreshReuses},
		{"sign_out", "ok", &c.SignOuts}, {"password_reset", "ok", &c.Resets}, {"password_reset", "failed", &c.ResetFailures},
	} {
		n := m.n
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "dream_auth_events_total",
			Help:        "End-user sign-in events by outcome (sign_in, refresh, sign_out, password_reset; refresh reused = a used refresh token came back and its session was ended).",
			ConstLabels: prometheus.Labels{"event": m.event, "outcome": m.outcome},
		}, func() float64 { return float64(n.Load()) }))
	}
}

// endUserTenant authenticates the publishable key of a sign-in call, from
// the header, `?pk=` or the body (they must agree), and notes its tenant
// for CORS. A secret key is refused: it never belongs in a front end.
func (s *Server) endUserTenant(r *http.Request, fromBody string) (engine.Tenant, error) {
	pk := ""
	header := bearer(r)
	if !strings.HasPrefix(header, "pk_") && !strings.HasPrefix(header, "sk_") {
		header = "" // e.g. the front end's access token, sent along
	}
	for _, k := range []string{header, r.URL.Query().Get("pk"), fromBody} {
		switch {
		case k == "":
		case strings.HasPrefix(k, "sk_"):
			return engine.Tenant{}, engine.Errorf(engine.EFORBIDDEN, "Sign-in takes the publishable key (pk_…), never a secret key: a secret key must not be in a front end.")
		case pk != "" && k != pk:
			return engine.Tenant{}, engine.Errorf(engine.EINVALIDAPIKEY, "Two different publishable keys were sent.")
		default:
			pk = k
		}
	}
	if pk == "" {
		return engine.Tenant{}, engine.Errorf(engine.EINVALIDAPIKEY, "Missing publishable key: send `?pk=pk_…`, `publishableKey` in the body or `Authorization: Bearer pk_…`.")
	}
	t, err := s.eng.Keys.AuthenticatePublishable(r.Context(), pk)
	if err != nil {
		return engine.Tenant{}, err
	}
	noteCORSTenant(r, t)
	if err := s.eng.AllowRequest(t.PlatformID); err != nil { // the platform's requests-per-second quota
		return engine.Tenant{}, err
	}
	if err := s.liveAllowed(r.Context(), t); err != nil { // stripe.go: operator billing
		return engine.Tenant{}, err
	}
	return t, nil
}

// clientAddress is the address sign-in failures are throttled by.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authCall decodes In, authenticates its publishable key and runs op.
func authCall[In any](s *Server, w http.ResponseWriter, r *http.Request, pk func(*In) string, op func(t engine.Tenant, in In) (any, error)) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in In
	if err := decode(body, &in, false); err != nil {
		return err
	}
	if _, err := idempotencyKey(r); err != nil {
		return err
	}
	t, err := s.endUserTenant(r, pk(&in))
	if err != nil {
		return err
	}
	res, err := op(t, in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
	return nil
}

type authSuccess struct {
	Success bool `json:"success"`
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	return authCall(s, w, r, func(in *engine.PasswordSignIn) string { return in.PublishableKey },
		func(t engine.Tenant, in engine.PasswordSignIn) (any, error) {
			return s.eng.Auth.SignIn(r.Context(), t, clientAddress(r), in)
		})
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	return authCall(s, w, r, func(in *engine.RefreshInput) string { return in.PublishableKey },
		func(t engine.Tenant, in engine.RefreshInput) (any, error) {
			return s.eng.Auth.Refresh(r.Context(), t, in.RefreshToken)
		})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	return authCall(s, w, r, func(in *engine.RefreshInput) string { return in.PublishableKey },
		func(t engine.Tenant, in engine.RefreshInput) (any, error) {
			return authSuccess{true}, s.eng.Auth.SignOut(r.Context(), t, in.RefreshToken)
		})
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	return authCall(s, w, r, func(in *engine.ResetPasswordInput) string { return in.PublishableKey },
		func(t engine.Tenant, in engine.ResetPasswordInput) (any, error) {
			return authSuccess{true}, s.eng.Auth.ResetPassword(r.Context(), t, in)
		})
}

// createPasswordReset answers a one-time reset token for the developer's
// backend to send to the customer. The body is optional (and empty).
func (s *Server) createPasswordReset(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	w.Header().Set("Cache-Control", "no-store")
	return command(w, r, true, created201, func(_ struct{}, idem *engine.Idempotency) (*engine.ResetToken, error) {
		return s.eng.Auth.CreateReset(r.Context(), k.Tenant(), mux.Vars(r)["id"], sensitive(idem))
	})
}

// sessionView is a session as the developer sees it: never its token.
type sessionView struct {
	ID          string    `json:"id"`
	CreatedAt   time.Time `json:"createdAt"`
	RefreshedAt time.Time `json:"refreshedAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// listSessions lists a customer's sign-ins (dream-api's own sign-in).
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	ss, err := s.eng.Auth.Sessions(r.Context(), k.Tenant(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	out := list[sessionView]{Data: []sessionView{}}
	for _, x := range ss {
		out.Data = append(out.Data, sessionView{ID: x.ID, CreatedAt: x.CreatedAt, RefreshedAt: x.RefreshedAt, ExpiresAt: x.ExpiresAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeSessions signs a customer out everywhere: its refresh tokens and
// access tokens stop working at once.
func (s *Server) revokeSessions(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	n, err := s.eng.Auth.RevokeSessions(r.Context(), k.Tenant(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": n})
	return nil
}

// jwks publishes the keys that verify dream-api's access tokens.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	ks, err := s.eng.Auth.JWKS(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, ks)
	return nil
}
