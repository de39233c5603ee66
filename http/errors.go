package http

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/dream-api/dream-api/engine"
)

// codes is the one table from error codes to HTTP statuses (the HTTP contract's table, http/openapi.yaml).
var codes = map[string]int{
	engine.EINVALIDJSON:         http.StatusBadRequest,
	engine.EINVALIDAPIKEY:       http.StatusUnauthorized,
	engine.EFORBIDDEN:           http.StatusForbidden,
	engine.ENOTFOUND:            http.StatusNotFound,
	engine.EMETHODNOTALLOWED:    http.StatusMethodNotAllowed,
	engine.ECONFLICT:            http.StatusConflict,
	engine.EIDEMPOTENCYCONFLICT: http.StatusConflict,
	engine.EBODYTOOLARGE:        http.StatusRequestEntityTooLarge,
	engine.EVALIDATION:          http.StatusUnprocessableEntity,
	engine.EUNKNOWNFEATURE:      http.StatusUnprocessableEntity,
	engine.ESTRIPENOTCONNECTED:  http.StatusFailedDependency,
	engine.ECLERKNOTCONFIGURED:  http.StatusFailedDependency,
	engine.ETIERLIMIT:           http.StatusTooManyRequests,
	engine.ERATELIMITED:         http.StatusTooManyRequests,
	engine.EQUOTAEXCEEDED:       http.StatusTooManyRequests,
	engine.EPLUGINERROR:         http.StatusServiceUnavailable,
	engine.EUPSTREAM:            http.StatusBadGateway,
	engine.EUNAVAILABLE:         http.StatusServiceUnavailable,
	engine.EINTERNAL:            http.StatusInternalServerError,
}

// titles are the `error` field of each code: a short summary; the message
// says more.
var titles = map[string]string{
	engine.EINVALIDJSON:         "Invalid JSON",
	engine.EINVALIDAPIKEY:       "Invalid API key",
	engine.EFORBIDDEN:           "Forbidden",
	engine.ENOTFOUND:            "Not found",
	engine.EMETHODNOTALLOWED:    "Method not allowed",
	engine.ECONFLICT:            "Conflict",
	engine.EIDEMPOTENCYCONFLICT: "Idempotency conflict",
	engine.EBODYTOOLARGE:        "Body too large",
	engine.EVALIDATION:          "Validation failed",
	engine.EUNKNOWNFEATURE:      "Unknown feature",
	engine.ESTRIPENOTCONNECTED:  "Stripe not connected",
	engine.ECLERKNOTCONFIGURED:  "Clerk not configured",
	engine.ETIERLIMIT:           "Tier limit reached",
	engine.ERATELIMITED:         "Rate limited",
	engine.EQUOTAEXCEEDED:       "Quota exceeded",
	engine.EPLUGINERROR:         "Plugin error",
	engine.EUPSTREAM:            "Upstream error",
	engine.EUNAVAILABLE:         "Unavailable",
	engine.EINTERNAL:            "Internal error",
}

// ErrorStatus returns the HTTP status of an error code; 500 for unknown codes.
func ErrorStatus(code string) int {
	if s, ok := codes[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is every error response: the contract's flat object.
type errorBody struct {
	Error     string              `json:"error"`
	Code      string              `json:"code"`
	Message   string              `json:"message"`
	RequestID string              `json:"requestId"`
	Fields    []engine.FieldError `json:"fields,omitempty"`
	Usage     *engine.Usage       `json:"usage,omitempty"`
	Plugin    *engine.PluginInfo  `json:"plugin,omitempty"`
}

// errorResponse turns err into a status and body. Only internal errors carry
// no detail: their text is for the log.
func errorResponse(err error, requestID string) (int, *errorBody, *engine.Error) {
	code := engine.ErrorCode(err)
	body := &errorBody{Error: titles[code], Code: code, Message: engine.ErrorMessage(err), RequestID: requestID}
	if body.Error == "" {
		body.Error = "Error"
	}
	var e *engine.Error
	if errors.As(err, &e) { // a store wraps EUNAVAILABLE with its cause
		body.Fields = e.Fields
	}
	return ErrorStatus(code), body, e
}

// writeError writes err as the response.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if rec, ok := engine.AsReplayed(err); ok {
		// The same response as the first time, request id included.
		if rec.RequestID != "" {
			w.Header().Set("X-Request-Id", rec.RequestID)
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, rec.Status, rec.Body)
		return
	}
	rid := requestID(w)
	status, body, e := errorResponse(err, rid)
	if status >= 500 {
		s.log.Error("request failed", "requestId", rid, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e != nil && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, status, body)
}
