package pdk

import "fmt"

// Logf formats like fmt.Sprintf and appends the result to the plugin log.
// Unlike Log, it allocates.
func Logf(format string, args ...any) { Log(fmt.Sprintf(format, args...)) }
