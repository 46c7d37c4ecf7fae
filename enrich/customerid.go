package enrich

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// DefaultCustomerIDPattern is the default of customer-id-pattern. It
// finds the account number WISPs commonly write next to a customer's name
// in a router's comments and names, case-insensitively:
//
//   - after "#": "Maria Lopez #1042";
//   - after a word such as id, cust, customer, acct, account, client,
//     cliente, abonado or contrato, and ":", "#", "=", "." or a space:
//     "ID:1042 Maria Lopez", "Maria Lopez (cust 1042)";
//   - alone (3 digits or more) before " - ", " | " or ": " at the start:
//     "1042 - Maria Lopez", or after " - " or " | " at the end:
//     "Maria Lopez - 1042".
//
// Ids are digits. Host names and logins ("android-5f3a", "iPhone-12",
// "DESKTOP-1042AB", "client-12") have no such marker and yield no id.
// Each alternative has its own group; the one that matched is the id.
const DefaultCustomerIDPattern = `(?i)#\s*(\d+)\b` +
	`|\b(?:id|cust|customer|acct|account|client|cliente|abonado|contrato)(?:\s*[:#=.]\s*|\s+)(\d+)\b` +
	`|^\s*(\d{3,})\s*[-–|:]\s+` +
	`|\s+[-–|]\s+(\d{3,})\s*$`

// CompileCustomerIDPattern compiles a customer-id-pattern: nil for "" (no
// customer ids from the routers), an error for a pattern that is not a Go
// regexp or has no capture group for the id.
func CompileCustomerIDPattern(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("invalid regexp %q: %w", pattern, err)
	}
	if re.NumSubexp() < 1 {
		return nil, fmt.Errorf("regexp %q has no capture group: put the id in one, as in %q", pattern, `#(\d+)`)
	}
	return re, nil
}

// SplitCustomerID finds a customer id in text (a router comment, a simple
// queue name, a PPP login) with re, a compiled customer-id-pattern. The
// id is the first capture group that took part in the match (a pattern
// normally has one; one per alternative is allowed), trimmed. name is
// text with the matched part removed, then tidied: empty "()" or "[]"
// left behind go, spaces are collapsed, and spaces and separators
// ("-", "|", ":", ",", ";", "#", "/") are trimmed at both ends. When no id
// is found (or re is nil), or nothing meaningful (no letter or digit)
// would be left of the name, name is text unchanged.
func SplitCustomerID(re *regexp.Regexp, text string) (name, id string) {
	if re == nil || text == "" {
		return text, ""
	}
	m := re.FindStringSubmatchIndex(text)
	if m == nil {
		return text, ""
	}
	for g := 1; 2*g+1 < len(m); g++ {
		if m[2*g] >= 0 && m[2*g+1] > m[2*g] {
			id = strings.TrimSpace(text[m[2*g]:m[2*g+1]])
			break
		}
	}
	if id == "" {
		return text, ""
	}
	rest := cleanName(text[:m[0]] + " " + text[m[1]:])
	if !strings.ContainsFunc(rest, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
		return text, id
	}
	return rest, id
}

// cleanName tidies what is left of a text once its id is removed: empty
// brackets go, runs of spaces become one, and separators at either end
// are trimmed ("Maria Lopez ()" and "- Maria Lopez" become "Maria Lopez").
func cleanName(s string) string {
	for _, pair := range []string{"()", "[]", "{}"} {
		for {
			t := removeEmptyPair(s, pair[0], pair[1])
			if t == s {
				break
			}
			s = t
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("-|:,;#/", r) || r == '–' || r == '—'
	})
}

// removeEmptyPair removes the first open...close pair with only spaces
// between them.
func removeEmptyPair(s string, open, close byte) string {
	for i := 0; i < len(s); i++ {
		if s[i] != open {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && s[j] == close {
			return s[:i] + s[j+1:]
		}
	}
	return s
}
