package main

import (
	"fmt"
	"sync"
	"testing"
)

// The write-path races of issue 17, from outside: two requests at once,
// many rounds, against the real program on a real store.

// TestRevokeRacingRotationFromOutside: whatever the order in which a
// rotation and a revoke of the same key run, once the revoke has answered
// the revoked secret never authenticates again, before or after a restart.
func TestRevokeRacingRotationFromOutside(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DREAM_ADMIN_TOKEN": "dat_test_" + randHex(16)}
	ts := startServerAt(t, dir, env)
	p := ts.createPlatform(t, "Race Keys")
	const rounds = 40
	var secrets []string
	for i := 0; i < rounds; i++ {
		res := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK}, 201, "")
		id, secret := str(res.Body, "key", "id"), str(res.Body, "secretKey")
		var wg sync.WaitGroup
		var rotate, revoke *response
		var rotateErr, revokeErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			rotate, rotateErr = ts.try(t.Context(), req{Method: "POST", Path: "/api/platform/keys", Key: p.SK,
				Body: map[string]any{"rotate": id}})
		}()
		go func() {
			defer wg.Done()
			revoke, revokeErr = ts.try(t.Context(), req{Method: "DELETE", Path: "/api/platform/keys/" + id, Key: p.SK})
		}()
		wg.Wait()
		if rotateErr != nil || revokeErr != nil {
			t.Fatalf("round %d: %v / %v", i, rotateErr, revokeErr)
		}
		if revoke.Status != 200 {
			t.Fatalf("round %d: revoke answered %d: %s", i, revoke.Status, revoke.Raw)
		}
		// The rotation either ran first (201) or found the key revoked (422).
		if rotate.Status != 201 && rotate.Status != 422 {
			t.Fatalf("round %d: rotate answered %d: %s", i, rotate.Status, rotate.Raw)
		}
		ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: secret}, 401, "invalid_api_key")
		secrets = append(secrets, secret)
	}
	ts.Close()
	ts = startServerAt(t, dir, env)
	for i, secret := range secrets {
		res := ts.do(t, req{Method: "GET", Path: "/api/platform/tiers", Key: secret})
		if res.Status != 401 {
			t.Fatalf("after a restart, the secret revoked in round %d answers %d", i, res.Status)
		}
	}
}

// TestTierPutsRacingFromOutside: two concurrent tier changes leave one
// config, and the limit enforced before a restart is the one enforced
// after it.
func TestTierPutsRacingFromOutside(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DREAM_ADMIN_TOKEN": "dat_test_" + randHex(16)}
	ts := startServerAt(t, dir, env)
	p := ts.createPlatform(t, "Race Tiers")
	cus := ts.createCustomer(t, p.SK, map[string]any{"email": "tiers@race.test"})
	id := str(cus, "id")
	enforced := func() int64 {
		t.Helper()
		res := ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: track(id)}, 200, "")
		return num(res.Body, "usage", "limit")
	}
	tiers := func(limit int) map[string]any {
		return map[string]any{"tiers": []map[string]any{
			{"name": "free", "limits": map[string]any{"requests": limit}},
			{"name": "pro", "price": 1500, "limits": map[string]any{"requests": 10000}},
		}}
	}
	const rounds = 12
	for i := 0; i < rounds; i++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := ts.try(t.Context(), req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(1000*i + j + 1)})
				if err == nil && res.Status != 200 {
					err = fmt.Errorf("status %d: %s", res.Status, res.Raw)
				}
				errs[j] = err
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v / %v", i, errs[0], errs[1])
		}
		before := enforced()
		ts.Close()
		ts = startServerAt(t, dir, env)
		if after := enforced(); after != before {
			t.Fatalf("round %d: limit %d enforced before a restart, %d after", i, before, after)
		}
	}
}
