// Package clerkfake is an in-memory fake of the parts of Clerk's Backend
// API that dream-api uses (users: create, get, update, update metadata,
// delete; the JWKS), answering with Clerk's JSON shapes and errors, and a
// signer of session JWTs with a test RSA key that the fake serves as its
// JWKS. Tests point the real clerk-sdk-go at it (CLERK_API_URL).
//
// Like Clerk, it refuses a taken email address, a password found in a data
// breach (see Breached) and a short password with 422s; it can be made to
// fail (SetFailure) to test outages.
package clerkfake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
)

// SecretKey is the secret key the fake accepts, unless Server.SecretKey is
// changed before the first request.
const SecretKey = "sk_test_clerkfake"

// Issuer is the `iss` of the session tokens the fake signs: the Frontend
// API URL of a development instance.
const Issuer = "https://fake-end-users.clerk.accounts.dev"

// BreachedPassword is a password the fake refuses like Clerk refuses one
// found in HaveIBeenPwned.
const BreachedPassword = "password123"

// Failure is how the fake fails every request.
type Failure int

const (
	// Up answers normally.
	Up Failure = iota
	// Down answers 503 with Clerk's error shape.
	Down
	// Unreachable closes every connection without an answer.
	Unreachable
)

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the Backend API base, like https://api.clerk.com/v1.
	URL string
	// SecretKey is the key requests must carry. Defaults to SecretKey.
	SecretKey string

	srv *httptest.Server

	mu       sync.Mutex
	users    map[string]*user
	failure  Failure
	breached map[string]bool
	keys     []signingKey // the JWKS; keys[0] signs
	calls    map[string]int
	// after the next user is created, failure becomes afterCreate
	afterCreate *Failure
}

type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

type user struct {
	id, emailID, email, firstName, lastName string
	password                                bool
	public                                  map[string]any
	created, updated                        int64
}

// New starts a fake. The caller MUST Close it.
func New() *Server {
	s := &Server{
		SecretKey: SecretKey,
		users:     map[string]*user{},
		breached:  map[string]bool{BreachedPassword: true},
		calls:     map[string]int{},
	}
	s.keys = []signingKey{newKey()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// SetFailure makes the fake fail (or answer again).
func (s *Server) SetFailure(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = f
	if f != Up {
		// Let the clients' pooled connections go, as a real outage would.
		s.srv.CloseClientConnections()
	}
}

// FailAfterNextCreate makes the fake fail with f (Down: answers 503)
// right after the next user it creates, as if Clerk went down between two
// calls.
func (s *Server) FailAfterNextCreate(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterCreate = &f
}

// Breached adds a password to those refused as breached.
func (s *Server) Breached(password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.breached[password] = true
}

// Calls returns how many requests reached the fake for a method and path
// pattern, e.g. "POST /v1/users", "PATCH /v1/users/{id}/metadata",
// "GET /v1/jwks" (failed ones included).
func (s *Server) Calls(pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[pattern]
}

// User is a user as a test sees it.
type User struct {
	ID             string
	Email          string
	FirstName      string
	LastName       string
	HasPassword    bool
	PublicMetadata map[string]any
}

// User returns a copy of a user.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return User{}, false
	}
	md, _ := json.Marshal(u.public)
	var public map[string]any
	_ = json.Unmarshal(md, &public)
	return User{ID: u.id, Email: u.email, FirstName: u.firstName, LastName: u.lastName, HasPassword: u.password, PublicMetadata: public}, true
}

// UserCount returns how many users exist.
func (s *Server) UserCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// AddUser makes a user directly, as if it had signed up, and returns its id.
func (s *Server) AddUser(email string, public map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UnixMilli()
	u := &user{id: s.newID("user_"), emailID: s.newID("idn_"), email: strings.ToLower(email), public: public, created: now, updated: now}
	if u.public == nil {
		u.public = map[string]any{}
	}
	s.users[u.id] = u
	return u.id
}

// --- session tokens

// SessionToken signs a session token for userID carrying publishableKey,
// valid for a minute from now, with the fake's issuer.
func (s *Server) SessionToken(userID, publishableKey string) string {
	return s.Token(s.SessionClaims(userID, publishableKey))
}

// SessionClaims are the claims SessionToken signs; tests change them to
// make bad tokens.
func (s *Server) SessionClaims(userID, publishableKey string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": Issuer, "sub": userID, "sid": "sess_" + userID[len("user_"):],
		"azp": "http://localhost:5173", "iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(time.Minute).Unix(), "v": 2, "publishableKey": publishableKey,
	}
}

// Token signs claims with the fake's current key.
func (s *Server) Token(claims map[string]any) string {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	return Sign(k.key, k.kid, claims)
}

// KeyID is the kid of the fake's current signing key.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0].kid
}

// RotateKey makes a new signing key; the JWKS serves it first, then the
// previous ones.
func (s *Server) RotateKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]signingKey{newKey()}, s.keys...)
}

// NewRSAKey returns a fresh 2048-bit key, e.g. to sign tokens the fake's
// JWKS does not vouch for.
func NewRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func newKey() signingKey {
	var b [8]byte
	rand.Read(b[:])
	return signingKey{kid: fmt.Sprintf("ins_%x", b), key: NewRSAKey()}
}

// Sign makes an RS256 JWT of claims with key, kid in its header.
func Sign(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		panic(err)
	}
	return tok
}

// --- the Backend API

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	pattern, id := route(r.Method, r.URL.Path)
	s.mu.Lock()
	s.calls[pattern]++
	failure := s.failure
	s.mu.Unlock()

	switch failure {
	case Unreachable:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case Down:
		clerkError(w, http.StatusServiceUnavailable, "service_unavailable", "Service unavailable", "The service is temporarily unavailable.", "")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.SecretKey {
		clerkError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication",
			"The provided secret key is invalid.", "")
		return
	}
	switch pattern {
	case "POST /v1/users":
		s.createUser(w, r)
	case "GET /v1/users/{id}":
		s.withUser(w, id, func(*user) {})
	case "PATCH /v1/users/{id}":
		s.updateUser(w, r, id, false)
	case "PATCH /v1/users/{id}/metadata":
		s.updateUser(w, r, id, true)
	case "DELETE /v1/users/{id}":
		s.mu.Lock()
		_, ok := s.users[id]
		delete(s.users, id)
		s.mu.Unlock()
		if !ok {
			notFound(w)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "user", "id": id, "deleted": true})
	case "GET /v1/jwks":
		s.mu.Lock()
		keys := make([]jose.JSONWebKey, 0, len(s.keys))
		for _, k := range s.keys {
			keys = append(keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: keys})
	default:
		clerkError(w, http.StatusNotFound, "resource_not_found", "not found", "The requested resource was not found.", "")
	}
}

// route names a request by its pattern and returns the user id in it.
func route(method, path string) (pattern, id string) {
	rest, ok := strings.CutPrefix(path, "/v1/users/")
	if !ok {
		return method + " " + path, ""
	}
	if id, ok := strings.CutSuffix(rest, "/metadata"); ok {
		return method + " /v1/users/{id}/metadata", id
	}
	return method + " /v1/users/{id}", rest
}

type createParams struct {
	EmailAddress            []string       `json:"email_address"`
	Password                *string        `json:"password"`
	FirstName               *string        `json:"first_name"`
	LastName                *string        `json:"last_name"`
	PublicMetadata          map[string]any `json:"public_metadata"`
	SkipPasswordRequirement bool           `json:"skip_password_requirement"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var p createParams
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		clerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", "The request body is invalid.", "")
		return
	}
	if len(p.EmailAddress) != 1 || !strings.Contains(p.EmailAddress[0], "@") {
		clerkError(w, http.StatusUnprocessableEntity, "form_param_format_invalid", "is invalid",
			"email_address must be a valid email address.", "email_address")
		return
	}
	email := strings.ToLower(p.EmailAddress[0])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.email == email {
			clerkError(w, http.StatusUnprocessableEntity, "form_identifier_exists", "That email address is taken. Please try another.",
				"That email address is taken. Please try another.", "email_address")
			return
		}
	}
	switch {
	case p.Password == nil && !p.SkipPasswordRequirement:
		clerkError(w, http.StatusUnprocessableEntity, "form_param_missing", "Enter password.", "Enter password.", "password")
		return
	case p.Password != nil && s.breached[*p.Password]:
		clerkError(w, http.StatusUnprocessableEntity, "form_password_pwned",
			"Password has been found in an online data breach. For account safety, please use a different password.",
			"Password has been found in an online data breach. For account safety, please use a different password.", "password")
		return
	case p.Password != nil && len(*p.Password) < 8:
		clerkError(w, http.StatusUnprocessableEntity, "form_password_length_too_short",
			"Passwords must be 8 characters or more.", "Passwords must be 8 characters or more.", "password")
		return
	}
	now := time.Now().UnixMilli()
	u := &user{
		id: s.newID("user_"), emailID: s.newID("idn_"), email: email, password: p.Password != nil,
		public: p.PublicMetadata, created: now, updated: now,
	}
	if p.FirstName != nil {
		u.firstName = *p.FirstName
	}
	if p.LastName != nil {
		u.lastName = *p.LastName
	}
	if u.public == nil {
		u.public = map[string]any{}
	}
	s.users[u.id] = u
	if s.afterCreate != nil {
		s.failure, s.afterCreate = *s.afterCreate, nil
	}
	writeJSON(w, http.StatusOK, u.clerkJSON())
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, id string, metadataOnly bool) {
	var p struct {
		FirstName      *string         `json:"first_name"`
		LastName       *string         `json:"last_name"`
		PublicMetadata json.RawMessage `json:"public_metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		clerkError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid", "The request body is invalid.", "")
		return
	}
	var md map[string]any
	if len(p.PublicMetadata) > 0 {
		if err := json.Unmarshal(p.PublicMetadata, &md); err != nil {
			clerkError(w, http.StatusUnprocessableEntity, "form_param_format_invalid", "is invalid",
				"public_metadata must be an object.", "public_metadata")
			return
		}
	}
	s.withUser(w, id, func(u *user) {
		if metadataOnly {
			merge(u.public, md) // Clerk deep-merges; null removes a key
		} else {
			if p.FirstName != nil {
				u.firstName = *p.FirstName
			}
			if p.LastName != nil {
				u.lastName = *p.LastName
			}
			if md != nil {
				u.public = md // Clerk's user update replaces the metadata
			}
		}
		u.updated = time.Now().UnixMilli()
	})
}

// withUser runs fn on user id and answers the user, or Clerk's 404.
func (s *Server) withUser(w http.ResponseWriter, id string, fn func(u *user)) {
	s.mu.Lock()
	u := s.users[id]
	var body any
	if u != nil {
		fn(u)
		body = u.clerkJSON()
	}
	s.mu.Unlock()
	if u == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// clerkJSON is the user as Clerk's Backend API answers it.
func (u *user) clerkJSON() map[string]any {
	public := u.public
	if public == nil {
		public = map[string]any{}
	}
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"object": "user", "id": u.id, "username": nil,
		"first_name": str(u.firstName), "last_name": str(u.lastName),
		"image_url": "https://img.clerk.com/default", "has_image": false,
		"primary_email_address_id": u.emailID, "primary_phone_number_id": nil, "primary_web3_wallet_id": nil,
		"password_enabled": u.password, "two_factor_enabled": false, "totp_enabled": false, "backup_code_enabled": false,
		"email_addresses": []any{map[string]any{
			"id": u.emailID, "object": "email_address", "email_address": u.email, "reserved": false,
			"linked_to": []any{}, "created_at": u.created, "updated_at": u.updated,
			"verification": map[string]any{"status": "verified", "strategy": "admin", "attempts": nil, "expire_at": nil},
		}},
		"phone_numbers": []any{}, "web3_wallets": []any{}, "passkeys": []any{}, "external_accounts": []any{},
		"saml_accounts": []any{}, "enterprise_accounts": []any{},
		"public_metadata": public, "private_metadata": map[string]any{}, "unsafe_metadata": map[string]any{},
		"external_id": nil, "last_sign_in_at": nil, "banned": false, "locked": false,
		"lockout_expires_in_seconds": nil, "verification_attempts_remaining": 100,
		"delete_self_enabled": true, "create_organization_enabled": true,
		"last_active_at": nil, "legal_accepted_at": nil, "created_at": u.created, "updated_at": u.updated,
	}
}

// newID makes a Clerk-like id: prefix and 27 base62 characters.
func (*Server) newID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 27)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return prefix + string(b)
}

func notFound(w http.ResponseWriter) {
	clerkError(w, http.StatusNotFound, "resource_not_found", "not found", "The requested resource was not found.", "")
}

// clerkError answers Clerk's error shape.
func clerkError(w http.ResponseWriter, status int, code, msg, long, param string) {
	e := map[string]any{"code": code, "message": msg, "long_message": long}
	if param != "" {
		e["meta"] = map[string]any{"param_name": param}
	}
	var b [8]byte
	rand.Read(b[:])
	writeJSON(w, status, map[string]any{"errors": []any{e}, "clerk_trace_id": fmt.Sprintf("%x", b)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
