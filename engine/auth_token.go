package engine

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
)

// Access tokens are JWTs (RFC 7519) signed with Ed25519 (alg "EdDSA",
// RFC 8037) by a key of the server's: header {alg, kid, typ}, claims iss,
// sub (the customer id), sid (the session), publishableKey, plan, iat,
// nbf, exp. Verification accepts exactly alg "EdDSA" with a key id of
// ours: "none", HMAC and every other algorithm are refused whatever the
// signature, so that a public key can never be used as an HMAC secret.
//
// Signing keys are stored (their private half sealed with the master key)
// and kept in memory through the store's Watch. The newest key signs; a
// key older than AuthConfig.KeyRotation is replaced at the next signature,
// and a replaced key keeps verifying, and stays in the JWKS, for
// AuthConfig.KeyOverlap.

// SigningKey is a key that signs end-user access tokens.
type SigningKey struct {
	ID        string    `json:"id"` // the `kid`
	CreatedAt time.Time `json:"createdAt"`
	// RetiredAt is when a newer key took over; zero while it signs.
	RetiredAt time.Time `json:"retiredAt,omitzero"`
	Public    []byte    `json:"public"`
	// PrivateSealed is the Ed25519 seed sealed by the engine's Sealer.
	PrivateSealed []byte `json:"privateSealed"`
}

const signingKeyPrefix = "sgk_"

// tokenSkew is how far in the future a token's iat/nbf may be.
const tokenSkew = time.Minute

// signingKeys is the in-memory copy of the stored keys.
type signingKeys struct {
	mu     sync.RWMutex
	loaded bool
	byID   map[string]*verifyKey
}

type verifyKey struct {
	k    *SigningKey
	priv ed25519.PrivateKey // unsealed on first use
}

// keyChanged is the store's Watch listener for signing keys.
func (a *EndUserAuth) keyChanged(k *SigningKey) {
	a.keys.mu.Lock()
	a.keys.byID[k.ID] = &verifyKey{k: k}
	a.keys.mu.Unlock()
}

// load reads the stored keys once, or again when force.
func (a *EndUserAuth) load(ctx context.Context, force bool) error {
	a.keys.mu.RLock()
	loaded := a.keys.loaded
	a.keys.mu.RUnlock()
	if loaded && !force {
		return nil
	}
	ks, err := a.c.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	a.keys.mu.Lock()
	for _, k := range ks {
		if cur := a.keys.byID[k.ID]; cur == nil || !cur.k.RetiredAt.Equal(k.RetiredAt) {
			a.keys.byID[k.ID] = &verifyKey{k: k}
		}
	}
	a.keys.loaded = true
	a.keys.mu.Unlock()
	return nil
}

// current returns the signing key, making one (and retiring the old one)
// when there is none or it is older than KeyRotation.
func (a *EndUserAuth) current(ctx context.Context) (*verifyKey, error) {
	if err := a.load(ctx, false); err != nil {
		return nil, err
	}
	now := a.c.now()
	if vk := a.newest(); vk != nil && now.Sub(vk.k.CreatedAt) < a.cfg.KeyRotation {
		return vk, nil
	}
	if err := a.rotate(ctx, false); err != nil {
		return nil, err
	}
	if vk := a.newest(); vk != nil {
		return vk, nil
	}
	return nil, Errorf(EINTERNAL, "no signing key after rotation")
}

func (a *EndUserAuth) newest() *verifyKey {
	a.keys.mu.RLock()
	defer a.keys.mu.RUnlock()
	var best *verifyKey
	for _, vk := range a.keys.byID {
		if vk.k.RetiredAt.IsZero() && (best == nil || vk.k.ID > best.k.ID) {
			best = vk
		}
	}
	return best
}

// RotateSigningKey makes a new signing key; the old ones keep verifying
// for AuthConfig.KeyOverlap. Keys also rotate by themselves (KeyRotation).
func (a *EndUserAuth) RotateSigningKey(ctx context.Context) error {
	if err := a.enabled(); err != nil {
		return err
	}
	if err := a.load(ctx, false); err != nil {
		return err
	}
	return a.rotate(ctx, true)
}

// rotate makes a new key in a unit of work; unless force, only when the
// stored keys still need one (another caller may have rotated).
func (a *EndUserAuth) rotate(ctx context.Context, force bool) error {
	now := a.c.now().UTC()
	_, err := a.c.store.Update(ctx, []Lock{signingKeysLock()}, func(tx Tx) (any, error) {
		ks, err := tx.SigningKeys(ctx)
		if err != nil {
			return nil, err
		}
		var live []*SigningKey
		for _, k := range ks {
			if k.RetiredAt.IsZero() {
				live = append(live, k)
			}
		}
		if !force {
			for _, k := range live {
				if now.Sub(k.CreatedAt) < a.cfg.KeyRotation {
					return nil, nil // fresh enough
				}
			}
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id := NewID(signingKeyPrefix, now)
		tx.PutSigningKey(&SigningKey{
			ID: id, CreatedAt: now, Public: pub,
			PrivateSealed: a.c.sealer.Seal(priv.Seed(), signingKeyAAD(id)),
		})
		for _, k := range live {
			k.RetiredAt = now
			tx.PutSigningKey(k)
		}
		return nil, nil
	})
	if err == nil {
		a.c.log.Info("end-user token signing key rotated")
	}
	return err
}

func signingKeyAAD(id string) []byte { return []byte("signing-key\x00" + id) }

// private returns vk's private key.
func (a *EndUserAuth) private(vk *verifyKey) (ed25519.PrivateKey, error) {
	a.keys.mu.RLock()
	priv := vk.priv
	a.keys.mu.RUnlock()
	if priv != nil {
		return priv, nil
	}
	seed, err := a.c.sealer.Open(vk.k.PrivateSealed, signingKeyAAD(vk.k.ID))
	if err != nil || len(seed) != ed25519.SeedSize {
		a.c.log.Error("the end-user token signing key cannot be unsealed (another master key?); rotate it", "kid", vk.k.ID)
		return nil, Errorf(EINTERNAL, "signing key %s cannot be unsealed", vk.k.ID)
	}
	priv = ed25519.NewKeyFromSeed(seed)
	a.keys.mu.Lock()
	vk.priv = priv
	a.keys.mu.Unlock()
	return priv, nil
}

type tokenHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ,omitempty"`
	Crit []string `json:"crit,omitempty"`
}

type tokenClaims struct {
	Iss            string `json:"iss"`
	Sub            string `json:"sub"`
	Sid            string `json:"sid"`
	PublishableKey string `json:"publishableKey"`
	Plan           string `json:"plan"`
	Iat            int64  `json:"iat"`
	Nbf            int64  `json:"nbf"`
	Exp            int64  `json:"exp"`
}

var b64 = base64.RawURLEncoding

// sign returns an access token for cus in session sid and its expiry.
func (a *EndUserAuth) sign(ctx context.Context, cus *Customer, sid string) (string, time.Time, error) {
	vk, err := a.current(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	priv, err := a.private(vk)
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.c.now().UTC().Truncate(time.Second)
	exp := now.Add(a.cfg.AccessTTL)
	return signJWT(priv, tokenHeader{Alg: "EdDSA", Kid: vk.k.ID, Typ: "JWT"}, tokenClaims{
		Iss: a.cfg.Issuer, Sub: cus.ID, Sid: sid, PublishableKey: cus.PublishableKey, Plan: cus.Plan,
		Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(),
	}), exp, nil
}

func signJWT(priv ed25519.PrivateKey, h tokenHeader, c tokenClaims) string {
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	signing := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	return signing + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signing)))
}

// tokenKeyID returns the kid of a JWT's header when it names a key of
// ours; "" otherwise.
func tokenKeyID(token string) string {
	hs, _, ok := strings.Cut(token, ".")
	if !ok || len(hs) > 512 {
		return ""
	}
	hb, err := b64.DecodeString(hs)
	if err != nil {
		return ""
	}
	var h tokenHeader
	if json.Unmarshal(hb, &h) != nil || !strings.HasPrefix(h.Kid, signingKeyPrefix) {
		return ""
	}
	return h.Kid
}

// verify checks an access token of ours: algorithm, key, signature, expiry,
// not-before, issuer. Returns EINVALIDAPIKEY for any token it refuses.
func (a *EndUserAuth) verify(ctx context.Context, token string) (*tokenClaims, error) {
	bad := func(why string) error {
		return Errorf(EINVALIDAPIKEY, "Invalid session token: %s.", why)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 4096 {
		return nil, bad("not a JWT")
	}
	hb, err1 := b64.DecodeString(parts[0])
	cb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, bad("not a JWT")
	}
	var h tokenHeader
	if err := strictJSON(hb, &h); err != nil {
		return nil, bad("malformed header")
	}
	if h.Alg != "EdDSA" {
		return nil, bad("algorithm " + quoteAlg(h.Alg) + " is not accepted")
	}
	if len(h.Crit) > 0 {
		return nil, bad("unsupported critical header")
	}
	vk, err := a.verifyKey(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if vk == nil {
		return nil, bad("unknown or retired key")
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(ed25519.PublicKey(vk.k.Public), []byte(parts[0]+"."+parts[1]), sig) {
		return nil, bad("bad signature")
	}
	var c tokenClaims
	if err := strictJSON(cb, &c); err != nil {
		return nil, bad("malformed claims")
	}
	now := a.c.now()
	switch {
	case c.Exp == 0 || !now.Before(time.Unix(c.Exp, 0)):
		return nil, bad("expired")
	case time.Unix(c.Nbf, 0).After(now.Add(tokenSkew)) || time.Unix(c.Iat, 0).After(now.Add(tokenSkew)):
		return nil, bad("not valid yet")
	case c.Iss != a.cfg.Issuer:
		return nil, bad("issued by another server")
	case c.Sub == "" || c.Sid == "":
		return nil, bad("no subject")
	}
	return &c, nil
}

func quoteAlg(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// strictJSON decodes one JSON object into v; trailing data is an error.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return Errorf(EINVALIDJSON, "trailing data")
	}
	return nil
}

// verifyKey returns the key kid names while it may verify; nil when none.
// An unknown key id of ours makes the stored keys be read again (another
// server of the same store may have rotated).
func (a *EndUserAuth) verifyKey(ctx context.Context, kid string) (*verifyKey, error) {
	if err := a.load(ctx, false); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(kid, signingKeyPrefix) || len(kid) != len(signingKeyPrefix)+26 {
		return nil, nil
	}
	a.keys.mu.RLock()
	vk := a.keys.byID[kid]
	a.keys.mu.RUnlock()
	if vk == nil {
		if err := a.load(ctx, true); err != nil {
			return nil, err
		}
		a.keys.mu.RLock()
		vk = a.keys.byID[kid]
		a.keys.mu.RUnlock()
	}
	if vk == nil || !a.verifies(vk.k) {
		return nil, nil
	}
	return vk, nil
}

// verifies reports whether k still verifies tokens.
func (a *EndUserAuth) verifies(k *SigningKey) bool {
	return k.RetiredAt.IsZero() || a.c.now().Before(k.RetiredAt.Add(a.cfg.KeyOverlap))
}

// JWK is one public key of a JWKS (RFC 7517, RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the body of GET /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys that verify access tokens, newest first;
// a signing key is made when there is none yet. Without sign-in, none.
func (a *EndUserAuth) JWKS(ctx context.Context) (*JWKS, error) {
	out := &JWKS{Keys: []JWK{}}
	if !a.cfg.Enabled {
		return out, nil
	}
	if _, err := a.current(ctx); err != nil {
		return nil, err
	}
	a.keys.mu.RLock()
	var ks []*SigningKey
	for _, vk := range a.keys.byID {
		if a.verifies(vk.k) {
			ks = append(ks, vk.k)
		}
	}
	a.keys.mu.RUnlock()
	sortKeysNewestFirst(ks)
	for _, k := range ks {
		out.Keys = append(out.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(k.Public), Kid: k.ID, Alg: "EdDSA", Use: "sig"})
	}
	return out, nil
}

// sortKeysNewestFirst orders keys: the one that signs, then the others
// by when they were retired, latest first.
func sortKeysNewestFirst(ks []*SigningKey) {
	newer := func(a, b *SigningKey) bool {
		switch {
		case a.RetiredAt.IsZero() != b.RetiredAt.IsZero():
			return a.RetiredAt.IsZero()
		case !a.RetiredAt.Equal(b.RetiredAt):
			return a.RetiredAt.After(b.RetiredAt)
		case !a.CreatedAt.Equal(b.CreatedAt):
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	}
	sort.Slice(ks, func(i, j int) bool { return newer(ks[i], ks[j]) })
}

// AuthenticateEndUser verifies an end user's token and returns the
// customer it signs in: dream-api's own access tokens when sign-in is on,
// Clerk session JWTs when Clerk is configured (AuthenticateSession). The
// token's publishableKey claim picks the platform and mode and must be
// the customer's own; a token of ours also needs its session to be alive
// (signing out, or revoking the sessions, ends it at once).
//
// Returns what AuthenticateSession returns; without Clerk, EINVALIDAPIKEY
// for a token that is not one of ours.
func (e *Engine) AuthenticateEndUser(ctx context.Context, token string) (*EndUser, error) {
	a := e.c.auth
	if !a.cfg.Enabled {
		return e.AuthenticateSession(ctx, token)
	}
	for _, p := range []string{prefixSecretLive, prefixSecretTest, prefixPublishableLive, prefixPublishableTest, prefixRefreshToken} {
		if strings.HasPrefix(token, p) {
			return nil, Errorf(EFORBIDDEN, "API keys and refresh tokens are not accepted here; send the end user's access token.")
		}
	}
	if token == "" {
		return nil, Errorf(EINVALIDAPIKEY, "Missing session token: send `Authorization: Bearer <access token>`.")
	}
	if tokenKeyID(token) == "" && e.c.identity != nil {
		return e.AuthenticateSession(ctx, token)
	}
	c, err := a.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	t, err := e.Keys.AuthenticatePublishable(ctx, c.PublishableKey)
	if err != nil {
		return nil, err
	}
	forbidden := Errorf(EFORBIDDEN, "This session's user is not a customer of publishable key %s.", c.PublishableKey)
	cus, err := customerIn(ctx, e.c.store, t, c.Sub)
	if ErrorCode(err) == ENOTFOUND || err == nil && cus.PublishableKey != c.PublishableKey {
		return nil, forbidden
	} else if err != nil {
		return nil, err
	}
	sess, err := e.c.store.SignInSession(ctx, c.Sid)
	if ErrorCode(err) == ENOTFOUND || err == nil && (sess.Tenant() != t || sess.CustomerID != cus.ID) {
		return nil, Errorf(EINVALIDAPIKEY, "This session has ended: sign in again.")
	} else if err != nil {
		return nil, err
	}
	return &EndUser{Tenant: t, Customer: cus, Session: &EndUserSession{
		UserID: c.Sub, SessionID: c.Sid, PublishableKey: c.PublishableKey, ExpiresAt: time.Unix(c.Exp, 0).UTC(),
	}}, nil
}

// EnsureSigningKey makes a signing key when there is none (or it is due
// for rotation), so that the JWKS is never empty once the server serves.
// Does nothing while sign-in is off.
func (a *EndUserAuth) EnsureSigningKey(ctx context.Context) error {
	if !a.cfg.Enabled {
		return nil
	}
	_, err := a.current(ctx)
	return err
}
