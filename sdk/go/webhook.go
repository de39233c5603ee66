package dream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidSignature is returned by VerifyWebhook for a delivery that is
// not signed with the secret, or was signed too long ago.
var ErrInvalidSignature = errors.New("dream: invalid webhook signature")

// Event is an outgoing webhook event of dream-api (usage.threshold,
// customer.plan_changed, …); Data depends on Type.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"createdAt"`
	Mode      string          `json:"mode"`
	Data      json.RawMessage `json:"data"`
}

// VerifyWebhook checks the Dream-Signature header of a webhook delivery
// (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per valid
// secret) and returns the event. body must be the raw request body.
// tolerance bounds the age of t; 0 means 5 minutes. Returns an error
// wrapping ErrInvalidSignature when no v1 matches or t is out of bounds.
func VerifyWebhook(body []byte, header, secret string, tolerance time.Duration) (*Event, error) {
	return verifyWebhook(body, header, secret, tolerance, time.Now())
}

func verifyWebhook(body []byte, header, secret string, tolerance time.Duration, now time.Time) (*Event, error) {
	if tolerance == 0 {
		tolerance = 5 * time.Minute
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return nil, fmt.Errorf("%w: the header has no t= and v1=", ErrInvalidSignature)
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return nil, fmt.Errorf("%w: signed %v ago, more than the tolerance %v", ErrInvalidSignature, age.Round(time.Second), tolerance)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			var e Event
			if err := json.Unmarshal(body, &e); err != nil {
				return nil, fmt.Errorf("dream: webhook body: %w", err)
			}
			return &e, nil
		}
	}
	return nil, fmt.Errorf("%w: no v1 matches the secret", ErrInvalidSignature)
}
