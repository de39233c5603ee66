package dashboard

import (
	"fmt"
	"strings"
	"time"
)

// timeNow is the dashboard's clock (the engine's default, time.Now).
func timeNow(h *handler) time.Time {
	if h.cfg.Now != nil {
		return h.cfg.Now()
	}
	return time.Now()
}

func fmtSscan(s string, v *int) (int, error) { return fmt.Sscan(s, v) }

// fmtSscanTier splits an engine field name "tiers[3].price" into 3 and
// "price".
func fmtSscanTier(field string, i *int, rest *string) (int, error) {
	if !strings.HasPrefix(field, "tiers[") {
		return 0, nil
	}
	n, err := fmt.Sscanf(field, "tiers[%d]", i)
	if n != 1 || err != nil {
		return n, err
	}
	_, after, ok := strings.Cut(field, "].")
	if !ok {
		return 1, nil
	}
	*rest = after
	return 2, nil
}

// tierField is the name of a tier form row's field error.
func tierField(row int, name string) string {
	if strings.HasPrefix(name, "limits.") {
		name = "limits"
	}
	if strings.HasPrefix(name, "features.") {
		name = "features"
	}
	if name == "limit" {
		name = "limits"
	}
	return fmt.Sprintf("tiers[%d].%s", row, name)
}
