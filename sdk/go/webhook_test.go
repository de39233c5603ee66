package dream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

func sign(secret string, t int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", t, body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := `{"id":"evt_1","type":"usage.threshold","createdAt":"2027-01-15T08:00:00Z","mode":"test","data":{"customerId":"cus_1","threshold":80}}`
	ts := now.Unix() - 10
	good := fmt.Sprintf("t=%d,v1=%s", ts, sign("whsec_a", ts, body))
	tests := []struct {
		name, header, body, secret string
		ok                         bool
	}{
		{"valid", good, body, "whsec_a", true},
		{"one of two secrets (rotation)", fmt.Sprintf("t=%d,v1=%s,v1=%s", ts, sign("whsec_old", ts, body), sign("whsec_a", ts, body)), body, "whsec_a", true},
		{"other secret", good, body, "whsec_b", false},
		{"changed body", good, body + " ", "whsec_a", false},
		{"too old", fmt.Sprintf("t=%d,v1=%s", ts-600, sign("whsec_a", ts-600, body)), body, "whsec_a", false},
		{"from the future", fmt.Sprintf("t=%d,v1=%s", ts+600, sign("whsec_a", ts+600, body)), body, "whsec_a", false},
		{"no t", "v1=" + sign("whsec_a", ts, body), body, "whsec_a", false},
		{"empty", "", body, "whsec_a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := verifyWebhook([]byte(tc.body), tc.header, tc.secret, 0, now)
			if tc.ok {
				if err != nil || e.ID != "evt_1" || e.Type != "usage.threshold" || e.Mode != "test" || string(e.Data) == "" {
					t.Fatalf("%+v %v", e, err)
				}
			} else if !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("%v, want ErrInvalidSignature", err)
			}
		})
	}
}
