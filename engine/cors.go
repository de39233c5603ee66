package engine

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxAllowedOrigins is the most CORS origins a platform may allow.
const MaxAllowedOrigins = 50

// AnyOrigin in a platform's allowed origins allows every origin.
const AnyOrigin = "*"

// CORSConfig is the browser origins a platform's front ends call the
// end-user endpoints (/api/me…) and /api/tiers from.
type CORSConfig struct {
	// AllowedOrigins are origins as browsers send them
	// (`https://app.example.com`, `http://localhost:5173`), or "*".
	// Required in a request body (the http package refuses it absent or
	// null); an empty list clears the origins.
	AllowedOrigins []string `json:"allowedOrigins" required:"true"`
}

// Validate normalizes every origin (lowercase scheme and host, no default
// port) and reports every one that is not an origin.
func (in *CORSConfig) Validate() error {
	var v Validation
	if in.AllowedOrigins == nil {
		in.AllowedOrigins = []string{}
	}
	if len(in.AllowedOrigins) > MaxAllowedOrigins {
		v.Add("allowedOrigins", "at most %d origins", MaxAllowedOrigins)
		return v.Err()
	}
	out := make([]string, 0, len(in.AllowedOrigins))
	for i, o := range in.AllowedOrigins {
		n, ok := NormalizeOrigin(o)
		if !ok {
			v.Add("allowedOrigins["+strconv.Itoa(i)+"]", "%q is not an origin like https://app.example.com (scheme and host, no path)", o)
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	in.AllowedOrigins = out
	return v.Err()
}

// NormalizeOrigin returns o as a browser sends it in the Origin header:
// lowercase `scheme://host[:port]` without the scheme's default port; "*"
// stays "*". It reports false for anything else.
func NormalizeOrigin(o string) (string, bool) {
	o = strings.TrimSpace(o)
	if o == AnyOrigin {
		return o, true
	}
	if len(o) > 200 || strings.ContainsAny(o, "\x00 \t\r\n") {
		return "", false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// CORS returns a platform's CORS config; no origins when none was set.
func (s *Platforms) CORS(ctx context.Context, platformID string) (*CORSConfig, error) {
	origins, err := s.c.store.AllowedOrigins(ctx, platformID)
	if err != nil {
		return nil, err
	}
	if origins == nil {
		origins = []string{}
	}
	return &CORSConfig{AllowedOrigins: origins}, nil
}

// SetCORS replaces the CORS config of t's platform (both modes). Returns
// EVALIDATION.
func (s *Platforms) SetCORS(ctx context.Context, t Tenant, in CORSConfig, idem *Idempotency) (*CORSConfig, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	res, err := s.c.update(ctx, t, idem, []Lock{corsLock(t.PlatformID)}, func(b Tx) (any, error) {
		prev, err := b.AllowedOrigins(ctx, t.PlatformID)
		if err != nil {
			return nil, err
		}
		b.PutAllowedOrigins(t.PlatformID, in.AllowedOrigins, prev)
		return &in, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*CORSConfig), nil
}

// OriginAllowed reports whether the platform allows origin (as the
// browser sent it).
func (s *Platforms) OriginAllowed(ctx context.Context, platformID, origin string) (bool, error) {
	n, ok := NormalizeOrigin(origin)
	if !ok || n == AnyOrigin {
		return false, nil
	}
	origins, err := s.c.store.AllowedOrigins(ctx, platformID)
	if err != nil {
		return false, err
	}
	return slices.Contains(origins, n) || slices.Contains(origins, AnyOrigin), nil
}

// OriginAllowedAnywhere reports whether some platform allows origin. It
// answers preflight requests, which carry no credentials to tell the
// platform by; the response itself is then held to the platform's own
// origins.
func (s *Platforms) OriginAllowedAnywhere(ctx context.Context, origin string) (bool, error) {
	n, ok := NormalizeOrigin(origin)
	if !ok || n == AnyOrigin {
		return false, nil
	}
	return s.c.store.OriginAllowedAnywhere(ctx, n)
}
