package engine

import (
	"context"
	"fmt"
	"testing"
)

func TestFallbackKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrBreakerOpen, FallbackBreakerOpen},
		{fmt.Errorf("plugins: decide_v1 cut short: %w", context.DeadlineExceeded), FallbackTimeout},
		{Errorf(EPLUGINERROR, "The limit plugin failed: decide_v1 exceeded its deadline of 10ms."), FallbackTimeout},
		{Errorf(EPLUGINERROR, "The limit plugin failed: decide_v1 trapped: wasm error: unreachable."), FallbackTrap},
		{Errorf(EPLUGINERROR, "The limit plugin failed: decide_v1 exited with code 3."), FallbackTrap},
		{Errorf(EPLUGINERROR, "The limit plugin failed: decide_v1 returned -1."), FallbackBadOutput},
		{Errorf(EPLUGINERROR, "The limit plugin failed: invalid decision 7; want 0 or 1."), FallbackBadOutput},
	} {
		if got := fallbackKind(tc.err); got != tc.want {
			t.Errorf("fallbackKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
