package function

import "strings"

// HostEnvAllowed reports whether a host environment variable may be passed
// through to a function (Permissions.HostEnv). Baton's own variables
// (BATON_SECRET_KEY, BATON_DATA...) never are: a function must not see the
// server's key or configuration, whatever its spec asks for.
func HostEnvAllowed(name string) bool {
	return !strings.HasPrefix(strings.ToUpper(name), "BATON_")
}
