package http

import (
	"context"
	"net/http"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// CORS: browsers call the end-user endpoints (/api/me…) and /api/tiers
// from the platforms' own front ends. Each platform lists its origins
// (PUT /api/platform/cors). A response carries Access-Control-Allow-Origin
// when its platform allows the request's Origin; before the platform is
// known (a request that fails authentication) when any platform allows it.
// Preflight requests carry no credentials: they are answered for an origin
// some platform allows (or, with ?pk=, that platform), and the response
// itself is then held to the platform's own list.

// corsRoutes are the routes answered to browsers of other origins.
var corsRoutes = map[string]bool{
	"/api/tiers": true, "/api/me": true, "/api/me/usage": true, "/api/me/checkout": true,
}

// corsAllowHeaders are the request headers a cross-origin call may send.
const corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key"

// corsMaxAge is how long (seconds) a browser may keep a preflight answer.
const corsMaxAge = "600"

// corsState is what the handler learns for the CORS decision: the
// platform, once authentication found it.
type corsState struct{ platformID string }

type ctxCORS struct{}

// noteCORSTenant tells the CORS middleware whose origins apply.
func noteCORSTenant(r *http.Request, t engine.Tenant) {
	if st, ok := r.Context().Value(ctxCORS{}).(*corsState); ok {
		st.platformID = t.PlatformID
	}
}

// withCORSTenant wraps a tenant handler so that it notes its tenant.
func withCORSTenant(h func(w http.ResponseWriter, r *http.Request, t engine.Tenant) error) func(w http.ResponseWriter, r *http.Request, t engine.Tenant) error {
	return func(w http.ResponseWriter, r *http.Request, t engine.Tenant) error {
		noteCORSTenant(r, t)
		return h(w, r, t)
	}
}

// cors is the router middleware of corsRoutes: it decides, when the
// response starts, whether the request's origin may read it.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		st := &corsState{}
		ctx := context.WithValue(r.Context(), ctxCORS{}, st)
		cw := &corsWriter{ResponseWriter: w}
		cw.decide = func() {
			if s.originAllowed(ctx, st.platformID, origin) {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
			}
		}
		next.ServeHTTP(cw, r.WithContext(ctx))
	})
}

// originAllowed asks the platform's origins, or, while the platform is
// unknown, whether any platform allows origin. Errors deny (and are logged).
func (s *Server) originAllowed(ctx context.Context, platformID, origin string) bool {
	var ok bool
	var err error
	if platformID != "" {
		ok, err = s.eng.Platforms.OriginAllowed(ctx, platformID, origin)
	} else {
		ok, err = s.eng.Platforms.OriginAllowedAnywhere(ctx, origin)
	}
	if err != nil {
		s.log.Error("CORS origin lookup failed", "origin", origin, "err", err)
		return false
	}
	return ok
}

// corsWriter runs decide once, just before the status line is written.
type corsWriter struct {
	http.ResponseWriter
	decide  func()
	decided bool
}

func (w *corsWriter) WriteHeader(code int) {
	if !w.decided {
		w.decided = true
		w.decide()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corsWriter) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// preflight answers OPTIONS for a CORS route whose methods are methods:
// 204 with the Access-Control-Allow-* headers when the Origin is allowed,
// 403 forbidden when it is not. Without an Origin (not a CORS preflight)
// it answers 204 with Allow.
func (s *Server) preflight(methods string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		h := w.Header()
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.Set("Allow", methods+", OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		platformID := ""
		if pk := r.URL.Query().Get("pk"); pk != "" {
			if t, err := s.eng.Keys.AuthenticatePublishable(r.Context(), pk); err == nil {
				platformID = t.PlatformID
			}
		}
		if !s.originAllowed(r.Context(), platformID, origin) {
			return engine.Errorf(engine.EFORBIDDEN, "Origin %s is not allowed to call this API; the platform adds it with PUT /api/platform/cors.", origin)
		}
		if m := r.Header.Get("Access-Control-Request-Method"); m != "" && m != http.MethodOptions && !strings.Contains(methods, m) {
			return engine.Errorf(engine.EFORBIDDEN, "Method %s is not allowed on %s.", m, r.URL.Path)
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// --- GET/PUT /api/platform/cors

func (s *Server) getCORS(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	c, err := s.eng.Platforms.CORS(r.Context(), k.PlatformID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) putCORS(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, false, ok200, func(in engine.CORSConfig, idem *engine.Idempotency) (*engine.CORSConfig, error) {
		return s.eng.Platforms.SetCORS(r.Context(), k.Tenant(), in, idem)
	})
}
