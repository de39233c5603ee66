package http

import (
	"net/http"

	"github.com/dream-api/dream-api/engine"
)

// createDeveloper is POST /admin/developers: the operator makes a developer
// account and its first platform (the way to get one when DREAM_SIGNUP is
// closed). The platform's secret keys are in the response, shown once.
func (s *Server) createDeveloper(w http.ResponseWriter, r *http.Request) error {
	return command(w, r, false, created201, func(in engine.SignupInput, idem *engine.Idempotency) (*engine.NewDeveloper, error) {
		return s.eng.Developers.Signup(r.Context(), in, sensitive(idem))
	})
}
