package http

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/dream-api/dream-api/engine"
)

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.Healthy(); err != nil {
		s.log.Error("storage unhealthy", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "version": s.version})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.version})
	return nil
}

// query returns the query parameter name, "" when absent. A parameter that
// is given but empty (`?limit=`) is EVALIDATION naming it: it is not taken
// as absent.
func query(r *http.Request, name string) (string, error) {
	vals, given := r.URL.Query()[name]
	if !given {
		return "", nil
	}
	if len(vals) == 0 || vals[0] == "" {
		return "", &engine.Error{Code: engine.EVALIDATION, Message: name + " must not be empty: give a value, or leave the parameter out.",
			Fields: []engine.FieldError{{Field: name, Message: "must not be empty"}}}
	}
	return vals[0], nil
}

// page reads ?limit= and ?startingAfter=.
func page(r *http.Request) (engine.Page, error) {
	var p engine.Page
	after, err := query(r, "startingAfter")
	if err != nil {
		return p, err
	}
	p.StartingAfter = after
	l, err := query(r, "limit")
	if err != nil {
		return p, err
	}
	if l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return p, &engine.Error{Code: engine.EVALIDATION, Message: "limit must be an integer from 1 to 100.",
				Fields: []engine.FieldError{{Field: "limit", Message: "must be an integer from 1 to 100"}}}
		}
		p.Limit = n
	}
	return p, nil
}

type list[T any] struct {
	Data    []T  `json:"data"`
	HasMore bool `json:"hasMore"`
}

// --- tiers

func (s *Server) getTiers(w http.ResponseWriter, r *http.Request, t engine.Tenant) error {
	tc, err := s.eng.Tiers.ForTenant(r.Context(), t) // with this mode's Stripe ids
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tc)
	return nil
}

func (s *Server) getPlatformTiers(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return s.getTiers(w, r, k.Tenant())
}

func (s *Server) putPlatformTiers(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	// PUT is idempotent by nature; an Idempotency-Key is honoured all the same.
	return command(w, r, false, ok200, func(in engine.TierConfigInput, idem *engine.Idempotency) (*engine.TierConfig, error) {
		return s.eng.Tiers.Put(r.Context(), k.Tenant(), in, idem)
	})
}

// --- customers

type customerReply struct {
	Success  bool             `json:"success"`
	Customer *engine.Customer `json:"customer"`
}

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	rsp := func(res any) (int, any) {
		return http.StatusCreated, customerReply{Success: true, Customer: res.(*engine.Customer)}
	}
	return command(w, r, false, rsp, func(in engine.CreateCustomerInput, idem *engine.Idempotency) (*engine.Customer, error) {
		return s.eng.Customers.Create(r.Context(), k.Tenant(), k.PublishableKey, in, idem)
	})
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	email, err := query(r, "email")
	if err != nil {
		return err
	}
	cs, more, err := s.eng.Customers.List(r.Context(), k.Tenant(), p, email)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[*engine.Customer]{Data: cs, HasMore: more})
	return nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	c, err := s.eng.Meter.CustomerWithUsage(r.Context(), k.Tenant(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": c})
	return nil
}

func (s *Server) updateCustomer(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in engine.UpdateCustomerInput
	if err := decode(body, &in, false); err != nil {
		return err
	}
	c, err := s.eng.Customers.Update(r.Context(), k.Tenant(), mux.Vars(r)["id"], in, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, customerReply{Success: true, Customer: c})
	return nil
}

func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	id := mux.Vars(r)["id"]
	if err := s.eng.Customers.Delete(r.Context(), k.Tenant(), id, nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": id})
	return nil
}

// --- metering

// trackReply renders a decision: 200, or 429 tier_limit_reached with the
// same usage when denied by /api/track.
func trackReply(requestID string, checkOnly bool) respond {
	return func(res any) (int, any) {
		tr := res.(*engine.TrackResult)
		if tr.Allowed || checkOnly {
			return http.StatusOK, tr
		}
		u := tr.Usage
		return http.StatusTooManyRequests, &errorBody{
			Error: titles[engine.ETIERLIMIT], Code: engine.ETIERLIMIT, Message: tr.Message,
			RequestID: requestID, Usage: &u, Plugin: tr.Plugin,
		}
	}
}

func (s *Server) track(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return s.meter(w, r, k, false, "")
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return s.meter(w, r, k, true, "")
}

// data is the seed's track call: the customer comes from X-User-Id, the
// body is optional, and X-User-Plan never overrides the stored plan.
func (s *Server) data(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	uid := r.Header.Get("X-User-Id")
	if uid == "" {
		return &engine.Error{Code: engine.EVALIDATION, Message: "The X-User-Id header is required.",
			Fields: []engine.FieldError{{Field: "X-User-Id", Message: "is required"}}}
	}
	return s.meter(w, r, k, false, uid)
}

func (s *Server) meter(w http.ResponseWriter, r *http.Request, k *engine.Key, checkOnly bool, userID string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in engine.TrackInput
	if !decodeTrackInput(body, &in) { // trackjson.go: the plain shape without reflection
		// A copy for the reflecting decoder, so that in stays on the stack
		// on the fast path.
		slow := new(engine.TrackInput)
		if err := decode(body, slow, userID != ""); err != nil {
			return err
		}
		in = *slow
	}
	if userID != "" {
		in.CustomerID = userID
	}
	rsp := trackReply(requestID(w), checkOnly)
	var idem *engine.Idempotency
	if !checkOnly {
		// A check changes nothing: there is nothing to replay, so its
		// Idempotency-Key is accepted and ignored and no record is stored
		// (storing one per fresh key filled disks: issue 10).
		if idem, err = idempotency(w, r, body, rsp); err != nil {
			return err
		}
	}
	call := "track"
	var res *engine.TrackResult
	if checkOnly {
		call = "check"
		res, err = s.eng.Meter.Check(r.Context(), k.Tenant(), in, idem)
	} else {
		res, err = s.eng.Meter.Track(r.Context(), k.Tenant(), in, idem)
	}
	if err != nil {
		if engine.ErrorCode(err) == engine.ERATELIMITED {
			s.metrics.decision(call, "rate_limited")
		}
		return err
	}
	outcome := "allowed"
	if !res.Allowed {
		outcome = "denied"
	}
	if res.Plugin != nil && res.Plugin.Fallback {
		s.metrics.decision(call, "plugin_fallback")
	}
	s.metrics.decision(call, outcome)
	reply(w, res, rsp)
	return nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	id, err := query(r, "customerId")
	if err != nil {
		return err
	}
	if id == "" {
		id = r.Header.Get("X-User-Id")
	}
	if id == "" {
		return &engine.Error{Code: engine.EVALIDATION, Message: "customerId (or the X-User-Id header) is required.",
			Fields: []engine.FieldError{{Field: "customerId", Message: "is required"}}}
	}
	u, err := s.eng.Meter.Usage(r.Context(), k.Tenant(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// --- keys

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	if err := k.MayManageKeys(); err != nil {
		return err
	}
	keys, err := s.eng.Keys.List(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[*engine.Key]{Data: keys})
	return nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	if err := k.MayManageKeys(); err != nil {
		return err
	}
	return command(w, r, true, created201, func(in engine.CreateKeyInput, idem *engine.Idempotency) (*engine.KeyPair, error) {
		return s.eng.Keys.Create(r.Context(), k.Tenant(), in, sensitive(idem))
	})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	if err := k.MayManageKeys(); err != nil {
		return err
	}
	rk, err := s.eng.Keys.Revoke(r.Context(), k.Tenant(), mux.Vars(r)["id"], nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": rk})
	return nil
}

// --- admin

func (s *Server) createPlatform(w http.ResponseWriter, r *http.Request) error {
	return command(w, r, false, created201, func(in engine.CreatePlatformInput, idem *engine.Idempotency) (*engine.NewPlatform, error) {
		return s.eng.Platforms.Create(r.Context(), in, sensitive(idem))
	})
}

func (s *Server) listPlatforms(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ps, more, err := s.eng.Platforms.List(r.Context(), p)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []*engine.Platform{}
	}
	writeJSON(w, http.StatusOK, list[*engine.Platform]{Data: ps, HasMore: more})
	return nil
}

func (s *Server) getPlatformQuotas(w http.ResponseWriter, r *http.Request) error {
	q, err := s.eng.Platforms.Quotas(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, q)
	return nil
}

func (s *Server) putPlatformQuotas(w http.ResponseWriter, r *http.Request) error {
	return command(w, r, false, ok200, func(in engine.PlatformQuotas, idem *engine.Idempotency) (*engine.PlatformQuotaSettings, error) {
		return s.eng.Platforms.SetQuotas(r.Context(), mux.Vars(r)["id"], in, idem)
	})
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Dir string `json:"dir" required:"true"`
	}
	if err := decode(body, &in, false); err != nil {
		return err
	}
	if s.backups == nil {
		var v engine.Validation
		v.Add("dir", "this server writes no backups (it has no backup directory)")
		return v.Err()
	}
	path, keyIncluded, err := s.backups(r.Context(), in.Dir)
	if err != nil {
		return err
	}
	masterKey := "not_included"
	if keyIncluded {
		masterKey = "included"
	}
	writeJSON(w, http.StatusOK, map[string]any{"dir": path, "createdAt": nowUTC(), "masterKey": masterKey})
	return nil
}
