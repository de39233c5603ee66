package engine

import (
	"errors"
	"fmt"
)

// Error codes. They are the `code` field of every error body (http/openapi.yaml, the HTTP contract); the
// http package holds the one table that maps them to statuses.
const (
	EINVALIDJSON         = "invalid_json"
	EINVALIDAPIKEY       = "invalid_api_key"
	EFORBIDDEN           = "forbidden"
	ENOTFOUND            = "not_found"
	EMETHODNOTALLOWED    = "method_not_allowed"
	ECONFLICT            = "conflict"
	EIDEMPOTENCYCONFLICT = "idempotency_conflict"
	EBODYTOOLARGE        = "body_too_large"
	EVALIDATION          = "validation_failed"
	EUNKNOWNFEATURE      = "unknown_feature"
	ESTRIPENOTCONNECTED  = "stripe_not_connected"
	ECLERKNOTCONFIGURED  = "clerk_not_configured"
	ETIERLIMIT           = "tier_limit_reached"
	ERATELIMITED         = "rate_limited"
	EQUOTAEXCEEDED       = "quota_exceeded"
	EPLUGINERROR         = "plugin_error"
	EUPSTREAM            = "upstream_error"
	// EUNAVAILABLE: the store cannot be reached (PostgreSQL down, a
	// connection lost); the call may be retried. Nothing was changed,
	// unless the message says the outcome of a commit is unknown.
	EUNAVAILABLE = "unavailable"
	EINTERNAL    = "internal"
)

// Error is the one error type of the domain. Anything that is not an *Error
// is treated as internal: its text goes to the log, never to a client.
type Error struct {
	Code    string
	Title   string       // short summary, the `error` field; defaults per code
	Message string       // human readable, safe to show to the caller
	Fields  []FieldError // for EVALIDATION

	// RetryAfter is set on ERATELIMITED, EQUOTAEXCEEDED and EUNAVAILABLE:
	// seconds until a call may succeed.
	RetryAfter int
}

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("engine: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, else
// EINTERNAL. A nil error has no code.
func ErrorCode(err error) string {
	if err == nil {
		return "" // before e, which escapes: no allocation on success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err. For anything that is
// not an *Error it returns a generic text.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// Validation collects field errors, so that every problem of an input is
// reported at once.
type Validation struct {
	fields []FieldError
}

// Add records a problem with field.
func (v *Validation) Add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when nothing was added, else an EVALIDATION *Error listing
// every field.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	msg := v.fields[0].Field + ": " + v.fields[0].Message
	if n := len(v.fields) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return &Error{Code: EVALIDATION, Message: msg, Fields: v.fields}
}

// invalid returns an EVALIDATION error about one field.
func invalid(field, format string, args ...any) error {
	var v Validation
	v.Add(field, format, args...)
	return v.Err()
}
