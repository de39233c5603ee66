package engine

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
)

// SignForTest signs any header and claims with the current signing key, so
// that tests can make tokens the server would never issue.
func (a *EndUserAuth) SignForTest(ctx context.Context, header, claims map[string]any) (string, error) {
	vk, err := a.current(ctx)
	if err != nil {
		return "", err
	}
	priv, err := a.private(vk)
	if err != nil {
		return "", err
	}
	if _, ok := header["kid"]; !ok {
		header["kid"] = vk.k.ID
	}
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	in := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	return in + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(in))), nil
}
