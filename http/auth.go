package http

import (
	"net/http"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// bearer returns the token of an `Authorization: Bearer` header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// secretHandler is a handler that runs as a secret key.
type secretHandler func(w http.ResponseWriter, r *http.Request, k *engine.Key) error

// secret authenticates a secret key. A publishable key is EFORBIDDEN here.
func (s *Server) secret(h secretHandler) handlerFunc {
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
		if err := s.liveAllowed(r.Context(), k.Tenant()); err != nil { // stripe.go: operator billing
			return err
		}
		return h(w, r, k)
	}
}

// publishable authenticates a publishable or a secret key (the header, or
// `?pk=` for publishable keys).
func (s *Server) publishable(h func(w http.ResponseWriter, r *http.Request, t engine.Tenant) error) handlerFunc {
	h = withCORSTenant(h) // cors.go: the tenant's origins decide
	return func(w http.ResponseWriter, r *http.Request) error {
		tok := bearer(r)
		if tok == "" {
			tok = r.URL.Query().Get("pk")
			if strings.HasPrefix(tok, "sk_") {
				// A secret in a URL ends up in logs and histories.
				return engine.Errorf(engine.EFORBIDDEN, "Never put a secret key in a URL; ?pk= takes a publishable key.")
			}
		}
		switch {
		case tok == "":
			return engine.Errorf(engine.EINVALIDAPIKEY, "Missing API key: send `Authorization: Bearer pk_…` or `?pk=`.")
		case strings.HasPrefix(tok, "sk_"):
			k, err := s.eng.Keys.Authenticate(r.Context(), tok)
			if err != nil {
				return err
			}
			if err := s.eng.AllowRequest(k.PlatformID); err != nil {
				return err
			}
			if err := s.liveAllowed(r.Context(), k.Tenant()); err != nil {
				return err
			}
			return h(w, r, k.Tenant())
		}
		t, err := s.eng.Keys.AuthenticatePublishable(r.Context(), tok)
		if err != nil {
			return err
		}
		if err := s.eng.AllowRequest(t.PlatformID); err != nil {
			return err
		}
		if err := s.liveAllowed(r.Context(), t); err != nil { // stripe.go: operator billing
			return err
		}
		return h(w, r, t)
	}
}

// admin authenticates the operator's admin token.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.eng.Platforms.AuthenticateAdmin(r.Context(), bearer(r)); err != nil {
			return err
		}
		return h(w, r)
	}
}
