// Command weekend is an example limit policy: on Saturdays and Sundays (UTC)
// every metered feature gets 50 % more than the tier's limit.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o weekend.wasm .
package main

import (
	"time"

	"github.com/dream-api/dream-api/plugins/pdk"
)

func init() { pdk.Handle(decide) }

func main() {}

func decide(in pdk.Input) pdk.Decision {
	limit := in.Limit
	if wd := in.Now.Weekday(); limit > 0 && (wd == time.Saturday || wd == time.Sunday) {
		limit += limit / 2
	}
	if limit < 0 || in.Usage+in.Quantity <= limit {
		return pdk.Allow(in.Quantity).WithLimit(limit)
	}
	return pdk.Deny("Weekend bonus used up: upgrade to unlock more " + in.Feature).WithLimit(limit)
}
