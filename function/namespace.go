package function

import "strings"

// DefaultNamespace is the namespace of functions deployed without one.
const DefaultNamespace = "default"

// Qualify returns the Manager's reference of a function (name, or
// name@version) of a namespace: the name itself in the default namespace,
// "namespace/name" in another. Neither namespaces nor function names
// contain '/', so a reference names exactly one namespace's function; a
// default-namespace reference reads the same as before namespaces existed,
// in metrics, events and prewarm statistics.
func Qualify(namespace, name string) string {
	if namespace == "" || namespace == DefaultNamespace {
		return name
	}
	return namespace + "/" + name
}

// splitRef is Qualify's inverse: a reference's namespace, name and version.
func splitRef(ref string) (namespace, name, version string) {
	namespace = DefaultNamespace
	if ns, rest, ok := strings.Cut(ref, "/"); ok {
		namespace, ref = ns, rest
	}
	name, version, _ = strings.Cut(ref, "@")
	return namespace, name, version
}

// nsOf is the namespace a spec belongs to.
func nsOf(s *Spec) string {
	if s.Namespace == "" {
		return DefaultNamespace
	}
	return s.Namespace
}

// key is a spec's function (every version) as a Manager reference.
func (s *Spec) key() string { return Qualify(s.Namespace, s.Name) }
