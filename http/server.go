// Package http serves dream-api's HTTP contract (http/openapi.yaml): a gorilla/mux
// router, thin handlers (decode → engine → encode), authentication, request
// ids, body limits, metrics and the OpenAPI document.
package http

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dream-api/dream-api/engine"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 1 << 20

// MaxIdempotencyKey is the longest Idempotency-Key accepted.
const MaxIdempotencyKey = 255

// Config configures a Server. Engine and Store are required.
type Config struct {
	Engine *engine.Engine
	Store  engine.Store
	// Version is reported by /health.
	Version string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the server's metrics; defaults to a new registry
	// of its own (so that several servers can live in one test process).
	Registry *prometheus.Registry
	// AccessLog logs every request at Info level; off, only failures are.
	AccessLog bool
	// Backup writes POST /admin/backup's backups (cmd/dream-api confines
	// them to the operator's backup directory). Without it that endpoint
	// refuses every request.
	Backup BackupFunc
	// Limits bound slow and unauthenticated request bodies (limits.go).
	Limits Limits
	// Dashboard serves every path under /dashboard (http/dashboard); none
	// is served without it.
	Dashboard http.Handler
}

// BackupFunc writes a backup named dir, as the request gave it, and returns
// the absolute path it wrote and whether the master key is in it. It
// returns EVALIDATION naming dir for a dir it refuses.
type BackupFunc func(ctx context.Context, dir string) (path string, keyIncluded bool, err error)

// Server is the HTTP face of an engine. It is an http.Handler.
type Server struct {
	eng     *engine.Engine
	store   engine.Store
	version string
	log     *slog.Logger
	access  bool
	router  *mux.Router
	static  map[routeKey]http.Handler // the routes without variables (route)
	// paths has one route per path template, named by it, and methods
	// the methods of each: what a 405 lists in Allow.
	paths   *mux.Router
	methods map[string][]string
	metrics *metrics
	backups BackupFunc
	limits  *limiter
	dash    http.Handler
}

// NewServer returns a Server with every route of the contract.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		eng: cfg.Engine, store: cfg.Store, version: cfg.Version, log: cfg.Logger, access: cfg.AccessLog,
		router: mux.NewRouter(), metrics: newMetrics(cfg.Registry), static: make(map[routeKey]http.Handler),
		paths: mux.NewRouter(), methods: make(map[string][]string),
		backups: cfg.Backup, limits: newLimiter(cfg.Limits), dash: cfg.Dashboard,
	}
	s.routes(cfg.Registry)
	return s
}

// Router exposes the routes, for tests that hold them to the spec.
func (s *Server) Router() *mux.Router { return s.router }

func (s *Server) routes(reg *prometheus.Registry) {
	r := s.router
	r.NotFoundHandler = s.instrument("", "unmatched", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return engine.Errorf(engine.ENOTFOUND, "No route %s %s.", r.Method, r.URL.Path)
	}))
	r.MethodNotAllowedHandler = s.instrument("", "unmatched", s.wrap(s.methodNotAllowed))

	s.route("GET", "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.handle("GET", "/health", s.health)
	s.handle("GET", "/openapi.json", s.openAPI)

	s.handle("GET", "/api/tiers", s.publishable(s.getTiers))
	s.handle("POST", "/api/customers", s.secret(s.createCustomer))
	s.handle("GET", "/api/customers", s.secret(s.listCustomers))
	s.handle("GET", "/api/customers/{id}", s.secret(s.getCustomer))
	s.handle("PATCH", "/api/customers/{id}", s.secret(s.updateCustomer))
	s.handle("DELETE", "/api/customers/{id}", s.secret(s.deleteCustomer))
	s.handle("POST", "/api/track", s.secret(s.track))
	s.handle("POST", "/api/track/batch", s.secret(s.trackBatch)) // batch.go
	s.handle("POST", "/api/check", s.secret(s.check))
	s.handle("POST", "/api/data", s.secret(s.data))
	s.handle("GET", "/api/usage", s.secret(s.usage))
	s.handle("GET", "/api/usage/history", s.secret(s.usageHistory)) // history.go
	s.handle("GET", "/api/platform/tiers", s.secret(s.getPlatformTiers))
	s.handle("PUT", "/api/platform/tiers", s.secret(s.putPlatformTiers))
	s.handle("GET", "/api/platform/keys", s.secret(s.listKeys))
	s.handle("POST", "/api/platform/keys", s.secret(s.createKey))
	s.handle("DELETE", "/api/platform/keys/{id}", s.secret(s.revokeKey))

	s.handle("GET", "/api/platform/plugin", s.secret(s.getPlugin))
	s.handle("PUT", "/api/platform/plugin", s.secret(s.putPlugin))
	s.handle("DELETE", "/api/platform/plugin", s.secret(s.deletePlugin))
	s.handle("POST", "/api/platform/plugin/rollback", s.secret(s.rollbackPlugin))
	s.handle("POST", "/api/platform/plugin/dry-run", s.secret(s.dryRunPlugin))

	s.endUserRoutes() // me.go: /api/me…, CORS, /api/platform/cors
	s.authRoutes(reg) // authn.go: /api/auth/…, password resets, /.well-known/jwks.json
	s.stripeRoutes()  // stripe.go: /api/platform/stripe…, checkout, portal, /webhook/stripe…, stats, billing
	s.webhookRoutes() // webhooks.go: /api/platform/webhooks…

	s.handle("POST", "/admin/platforms", s.admin(s.createPlatform))
	s.handle("GET", "/admin/platforms", s.admin(s.listPlatforms))
	s.handle("GET", "/admin/platforms/{id}/quotas", s.admin(s.getPlatformQuotas))
	s.handle("PUT", "/admin/platforms/{id}/quotas", s.admin(s.putPlatformQuotas))
	s.suspendRoutes() // admin_suspend.go: /admin/platforms/{id}/suspend|resume
	s.handle("POST", "/admin/developers", s.admin(s.createDeveloper))
	s.handle("POST", "/admin/backup", s.admin(s.backup))
}

// handle serves method and path with h (see route).
func (s *Server) handle(method, path string, h handlerFunc) {
	s.route(method, path, s.wrap(h))
}

// route serves method and path with h, instrumented, behind the CORS
// decision on corsRoutes. A path without variables is also kept in
// s.static, which ServeHTTP looks in before the router: the metering calls
// are most of the traffic, and gorilla/mux's regexp matching and the two
// request copies it makes for route and vars were a tenth of their CPU.
func (s *Server) route(method, path string, h http.Handler) {
	h = s.instrument(method, path, h)
	if corsRoutes[path] && method != http.MethodOptions {
		h = s.cors(h) // preflights answer for themselves
	}
	s.router.Handle(path, h).Methods(method)
	if !strings.Contains(path, "{") {
		s.static[routeKey{method, path}] = h
	}
	if s.methods[path] == nil {
		s.paths.NewRoute().Path(path).Name(path)
	}
	s.methods[path] = append(s.methods[path], method)
	slices.Sort(s.methods[path])
}

// methodNotAllowed answers a path that is served, with a method it is not
// served with: 405 method_not_allowed, and Allow listing the methods. The
// router calls it (ServeHTTP's static lookup falls through to the router
// for any method it does not have).
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	var m mux.RouteMatch
	if !s.paths.Match(r, &m) || m.Route == nil {
		return engine.Errorf(engine.ENOTFOUND, "No route %s %s.", r.Method, r.URL.Path)
	}
	allow := strings.Join(s.methods[m.Route.GetName()], ", ")
	w.Header().Set("Allow", allow)
	return engine.Errorf(engine.EMETHODNOTALLOWED, "%s is not served on %s; it takes %s.", r.Method, r.URL.Path, allow)
}

type routeKey struct{ method, path string }

// ServeHTTP gives every response a request id, bounds and caps the body and
// routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", engine.NewID("req_", time.Now()))
	defer s.limits.guardBody(w, r).done() // limits.go: the body's deadline
	if r.Body != nil && r.Body != http.NoBody {
		// net/http's server reads no more of a body than its declared
		// Content-Length: only a body of unknown length (chunked) or one
		// declared too long needs the cap, and the allocation it costs.
		if limit := bodyLimit(r); r.ContentLength < 0 || r.ContentLength > limit {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
	}
	if h := s.static[routeKey{r.Method, r.URL.Path}]; h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if s.dash != nil && (r.URL.Path == "/dashboard" || strings.HasPrefix(r.URL.Path, "/dashboard/")) {
		s.dash.ServeHTTP(w, r)
		return
	}
	s.router.ServeHTTP(w, r)
}

// requestID is the id ServeHTTP gave the response (a replay answers with
// the first response's).
func requestID(w http.ResponseWriter) string {
	return w.Header().Get("X-Request-Id")
}

// handlerFunc is a handler that returns its error; wrap writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap adapts a handlerFunc: one place writes every error and recovers
// panics.
func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "requestId", requestID(w), "panic", v, "stack", string(debug.Stack()))
				s.writeError(w, r, errors.New("panic"))
			}
		}()
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// instrument records latency and status of route; method "" stands for
// any method (the request's).
func (s *Server) instrument(method, route string, h http.Handler) http.Handler {
	var rm *routeMetrics
	if method != "" {
		rm = s.metrics.route(method, route)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriterPool.Get().(*statusWriter)
		sw.ResponseWriter, sw.status = w, 0
		h.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		sw.ResponseWriter = nil
		statusWriterPool.Put(sw)
		d := time.Since(start)
		if rm != nil {
			rm.observe(status, d)
		} else {
			s.metrics.observe(r.Method, route, status, d)
		}
		if s.access {
			s.log.Info("request", "requestId", requestID(w), "method", r.Method, "route", route,
				"status", status, "durationMs", float64(d.Microseconds())/1000)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

var statusWriterPool = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// readBody reads the request body; EBODYTOOLARGE past MaxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	return readBodyInto(r, nil)
}

// readBodyInto is readBody appending to buf (a pooled buffer: batch.go).
func readBodyInto(r *http.Request, buf []byte) ([]byte, error) {
	if r.Body == nil {
		return buf, nil
	}
	if buf == nil && r.ContentLength > 0 && r.ContentLength <= presizedBody {
		// One allocation of the declared size (and a byte to see the end
		// in), not io.ReadAll's 512 bytes and growth.
		buf = make([]byte, 0, r.ContentLength+1)
	}
	b, err := readAll(r.Body, buf)
	if err != nil {
		// mbe escapes into errors.As: only on this path, not per request.
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, engine.Errorf(engine.EBODYTOOLARGE, "Request bodies are limited to %d bytes.", mbe.Limit)
		}
		return nil, engine.Errorf(engine.EINVALIDJSON, "Could not read the request body.")
	}
	return b, nil
}

// presizedBody is the largest declared Content-Length readBody allocates
// for before the bytes arrive: a client that declares a megabyte and sends
// nothing does not hold one.
const presizedBody = 64 << 10

// readAll is io.ReadAll appending to buf.
func readAll(rd io.Reader, buf []byte) ([]byte, error) {
	if buf == nil {
		return io.ReadAll(rd)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		} else if err != nil {
			return buf, err
		}
	}
}

// encode is the one JSON encoding of every response body.
func encode(v any) []byte {
	return appendJSON(make([]byte, 0, 512), v)
}

// appendJSON appends the JSON of v and a newline to b. The bodies of the
// track path are written without reflection (trackjson.go).
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case *engine.TrackResult:
		return appendTrackResult(b, v)
	case *errorBody:
		if len(v.Fields) == 0 {
			return appendErrorBody(b, v)
		}
	}
	out, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded; this is a programming error.
		panic(err)
	}
	return append(append(b, out...), '\n')
}

// bodyBuffers are the buffers bodies are encoded into on their way out.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := bodyBuffers.Get().(*[]byte)
	*buf = appendJSON((*buf)[:0], v)
	writeRaw(w, status, *buf)
	if cap(*buf) <= 64<<10 {
		bodyBuffers.Put(buf)
	}
}

// jsonContentType is the Content-Type of every JSON answer, one slice for
// all of them: Header.Set would allocate one per response. net/http only
// reads it, and Header.Add would append into a new array (cap is 1).
var jsonContentType = []string{"application/json"}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(body)
}

// respond renders an operation's result as a status and a body.
type respond func(result any) (int, any)

// idempotency returns the engine's view of the request's Idempotency-Key,
// or nil when there is none. The request hash covers method, path, query
// and body.
// A header that is given but empty is EVALIDATION, like one that is too
// long.
func idempotency(w http.ResponseWriter, r *http.Request, body []byte, rsp respond) (*engine.Idempotency, error) {
	key, err := idempotencyKey(r)
	if key == "" || err != nil {
		return nil, err
	}
	h := sha256.New()
	io.WriteString(h, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+"\n")
	io.WriteString(h, r.Header.Get("X-User-Id")+"\n")
	h.Write(body)
	idem := &engine.Idempotency{Key: key, RequestID: requestID(w), Render: func(res any) (int, []byte) {
		status, v := rsp(res)
		return status, encode(v)
	}}
	h.Sum(idem.RequestHash[:0])
	return idem, nil
}

// idempotencyKey returns the request's Idempotency-Key, "" when there is
// none. One that is given but empty, or longer than MaxIdempotencyKey, is
// EVALIDATION naming it.
func idempotencyKey(r *http.Request) (string, error) {
	vals, given := r.Header["Idempotency-Key"]
	if !given {
		return "", nil
	}
	key := ""
	if len(vals) > 0 {
		key = vals[0]
	}
	if key == "" {
		return "", &engine.Error{Code: engine.EVALIDATION, Message: "Idempotency-Key must not be empty: send 1 to 255 characters, or no header.",
			Fields: []engine.FieldError{{Field: "Idempotency-Key", Message: "must not be empty"}}}
	}
	if len(key) > MaxIdempotencyKey {
		return "", &engine.Error{Code: engine.EVALIDATION, Message: "Idempotency-Key must be at most 255 characters.",
			Fields: []engine.FieldError{{Field: "Idempotency-Key", Message: "must be at most 255 characters"}}}
	}
	return key, nil
}

// ok200 and created201 render a result as is.
func ok200(res any) (int, any)      { return http.StatusOK, res }
func created201(res any) (int, any) { return http.StatusCreated, res }

// command is the shape of every call that changes something: decode the
// JSON body into In (an empty body allowed when optional), give op the
// request's Idempotency-Key, and reply through rsp.
func command[In, Out any](w http.ResponseWriter, r *http.Request, optional bool, rsp respond,
	op func(in In, idem *engine.Idempotency) (Out, error)) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in In
	if err := decode(body, &in, optional); err != nil {
		return err
	}
	idem, err := idempotency(w, r, body, rsp)
	if err != nil {
		return err
	}
	res, err := op(in, idem)
	if err != nil {
		return err
	}
	reply(w, res, rsp)
	return nil
}

// sensitive marks a response that holds a secret: its idempotency record is
// stored sealed.
func sensitive(idem *engine.Idempotency) *engine.Idempotency {
	if idem != nil {
		idem.Sensitive = true
	}
	return idem
}

// reply writes the result of an operation through rsp.
func reply(w http.ResponseWriter, res any, rsp respond) {
	status, v := rsp(res)
	writeJSON(w, status, v)
}
