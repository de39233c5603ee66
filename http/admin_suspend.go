package http

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/dream-api/dream-api/engine"
)

// suspendRoutes adds the operator's suspension of a platform
// (engine.Platforms.Suspend): while suspended, every request with one of
// its keys is 403 forbidden; its Stripe webhooks are still applied.
func (s *Server) suspendRoutes() {
	s.handle("POST", "/admin/platforms/{id}/suspend", s.admin(s.suspendPlatform))
	s.handle("POST", "/admin/platforms/{id}/resume", s.admin(s.resumePlatform))
}

// platformResult is the answer of suspend and resume.
type platformResult struct {
	Platform *engine.Platform `json:"platform"`
}

// suspendPlatform is POST /admin/platforms/{id}/suspend `{reason?}` (the
// body is optional).
func (s *Server) suspendPlatform(w http.ResponseWriter, r *http.Request) error {
	return command(w, r, true, ok200, func(in engine.SuspendInput, idem *engine.Idempotency) (platformResult, error) {
		p, err := s.eng.Platforms.Suspend(r.Context(), mux.Vars(r)["id"], in, idem)
		return platformResult{p}, err
	})
}

// resumePlatform is POST /admin/platforms/{id}/resume (no body).
func (s *Server) resumePlatform(w http.ResponseWriter, r *http.Request) error {
	return command(w, r, true, ok200, func(_ struct{}, idem *engine.Idempotency) (platformResult, error) {
		p, err := s.eng.Platforms.Resume(r.Context(), mux.Vars(r)["id"], idem)
		return platformResult{p}, err
	})
}
