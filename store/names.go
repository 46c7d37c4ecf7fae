package store

import "strings"

// RouterNameRule says what a router name may be, for error messages.
const RouterNameRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, up to 64"

// routerNameChar reports whether c may appear in a router name.
func routerNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ValidRouterName reports whether name is a valid router name
// (RouterNameRule): the one rule of the CLI, the console and provisioning.
func ValidRouterName(name string) bool {
	if name == "" || len(name) > 64 || !routerNameChar(name[0]) || name[0] == '.' || name[0] == '_' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !routerNameChar(name[i]) {
			return false
		}
	}
	return true
}

// RouterNameFrom turns s (a router's identity, or its address) into a
// valid router name: other characters become '-', leading and trailing
// punctuation goes, at most 64 characters; fallback when nothing is left.
func RouterNameFrom(s, fallback string) string {
	b := []byte(s)
	for i, c := range b {
		if !routerNameChar(c) {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-._")
	if len(out) > 64 {
		out = strings.TrimRight(out[:64], "-._")
	}
	if !ValidRouterName(out) {
		return fallback
	}
	return out
}
