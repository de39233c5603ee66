//go:build !wasip1

package pdk

import (
	"fmt"
	"os"
)

// Log appends msg as one line to the plugin log. Outside WebAssembly (in a
// policy's host-side tests) it writes to standard error.
func Log(msg string) {
	if len(msg) == 0 {
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}
