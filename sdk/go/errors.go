package dream

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Error is an error answer of the API: one flat JSON object with a code
// (API.md's table: invalid_api_key, not_found, validation_failed, …).
// Use errors.As to get it:
//
//	var e *dream.Error
//	if errors.As(err, &e) && e.Code == "not_found" { … }
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the machine-readable code, e.g. "validation_failed".
	Code string
	// Summary is the short summary (the body's "error").
	Summary string
	// Message is human readable and safe to show.
	Message string
	// RequestID is the request's id (req_…), for the server's log.
	RequestID string
	// Fields lists every invalid field of a validation_failed answer.
	Fields []FieldError
	// RetryAfter is the Retry-After header; 0 without one.
	RetryAfter time.Duration
}

// FieldError is one invalid field of a validation_failed answer.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error implements error.
func (e Error) Error() string {
	s := fmt.Sprintf("dream: %d %s: %s", e.Status, e.Code, e.Message)
	for _, f := range e.Fields {
		s += fmt.Sprintf("; %s %s", f.Field, f.Message)
	}
	if e.RequestID != "" {
		s += " (" + e.RequestID + ")"
	}
	return s
}

// As lets errors.As fill an Error value as well as a pointer.
func (e *Error) As(target any) bool {
	if t, ok := target.(*Error); ok {
		*t = *e
		return true
	}
	return false
}

// TierLimitError is the 429 tier_limit_reached answer of Track: the quota
// of the period is used up and nothing was counted. Usage is the usage
// that was not exceeded. Both forms work:
//
//	var tl *dream.TierLimitError
//	if errors.As(err, &tl) { fmt.Println(tl.Usage.Limit) }
//	errors.As(err, &dream.TierLimitError{})
//
// and errors.As(err, &e) with e an *Error gets its Error.
type TierLimitError struct {
	// Status is 429; Code is "tier_limit_reached".
	Status        int
	Code, Summary string
	Message       string
	RequestID     string
	// Usage is the usage that was not exceeded (Remaining is what is left).
	Usage Usage
	// Plugin is the limit plugin that decided; nil for built-in limits.
	Plugin *PluginResult
}

// Err is the error as an Error.
func (e TierLimitError) Err() Error {
	return Error{Status: e.Status, Code: e.Code, Summary: e.Summary, Message: e.Message, RequestID: e.RequestID}
}

// Error implements error.
func (e TierLimitError) Error() string { return e.Err().Error() }

// As lets errors.As fill a TierLimitError value, or an *Error / Error.
func (e *TierLimitError) As(target any) bool {
	switch t := target.(type) {
	case *TierLimitError:
		*t = *e
	case **Error:
		x := e.Err()
		*t = &x
	case *Error:
		*t = e.Err()
	default:
		return false
	}
	return true
}

// errorBody is an error answer as sent.
type errorBody struct {
	Error     string        `json:"error"`
	Code      string        `json:"code"`
	Message   string        `json:"message"`
	RequestID string        `json:"requestId"`
	Fields    []FieldError  `json:"fields"`
	Usage     *Usage        `json:"usage"`
	Plugin    *PluginResult `json:"plugin"`
}

// parseError makes the error of a non-2xx answer. An answer that is not an
// error object (a proxy's HTML page) still gives an *Error, with the code
// "http_<status>".
func parseError(status int, h http.Header, body []byte) error {
	var b errorBody
	if err := json.Unmarshal(body, &b); err != nil || b.Code == "" {
		b = errorBody{Code: fmt.Sprintf("http_%d", status), Error: http.StatusText(status),
			Message: fmt.Sprintf("the server answered %d %s", status, http.StatusText(status))}
	}
	e := Error{Status: status, Code: b.Code, Summary: b.Error, Message: b.Message, RequestID: b.RequestID, Fields: b.Fields}
	if e.RequestID == "" {
		e.RequestID = h.Get("X-Request-Id")
	}
	if ra := retryAfter(h); ra > 0 {
		e.RetryAfter = ra
	}
	if b.Code == "tier_limit_reached" && b.Usage != nil {
		return &TierLimitError{Status: status, Code: e.Code, Summary: e.Summary, Message: e.Message,
			RequestID: e.RequestID, Usage: *b.Usage, Plugin: b.Plugin}
	}
	return &e
}
