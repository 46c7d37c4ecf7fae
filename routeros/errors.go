package routeros

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors that callers (the provisioner, the CLI and the web API)
// branch on with errors.Is. The errors returned by Dial and Conn.Run wrap
// one of them and add the router's address or its own message.
var (
	// ErrAuth means the router refused the username or password.
	ErrAuth = errors.New("wrong username or password")
	// ErrRefused means nothing accepts connections on the API port: the
	// api (or api-ssl) service is disabled, the port is wrong, or a firewall
	// rejects the connection.
	ErrRefused = errors.New("connection refused: API service disabled or port closed")
	// ErrTimeout means the router did not answer in time. The connection is
	// discarded because the stream may have stopped mid-sentence.
	ErrTimeout = errors.New("router did not answer in time")
	// ErrFingerprint means the TLS certificate differs from the pinned one.
	ErrFingerprint = errors.New("TLS certificate fingerprint mismatch")
	// ErrPermission means the user lacks the policy for the command
	// (RouterOS "not enough permissions").
	ErrPermission = errors.New("not enough permissions")
	// ErrUnknown means the router does not know a property or a command
	// (older versions, or a menu absent on this board).
	ErrUnknown = errors.New("unknown property or command")
	// ErrUnavailable wraps the error of a Print of a menu or property the
	// router lacks (an older version, a missing package or switch chip):
	// pollers treat it as "not on this router", not as a failure.
	ErrUnavailable = errors.New("menu or property not available on this router")
	// ErrExists means the router already has such an entry.
	ErrExists = errors.New("entry already exists")
	// ErrInvalid means the router rejected a value.
	ErrInvalid = errors.New("invalid value")
	// ErrDropped means the router closed the connection or sent !fatal.
	ErrDropped = errors.New("connection dropped")
	// ErrBroken is returned by Run on a connection that failed earlier and
	// must be redialled.
	ErrBroken = errors.New("connection is broken, redial")
	// ErrTrap is the kind of router errors that fit no other sentinel.
	ErrTrap = errors.New("router error")
)

// FingerprintError is returned when the router's certificate does not match
// the pinned SHA-256 fingerprint. It matches ErrFingerprint with errors.Is.
type FingerprintError struct {
	Address string
	Pinned  string // hex SHA-256 recorded at onboarding
	Got     string // hex SHA-256 presented now
}

// Error names the router and both fingerprints.
func (e *FingerprintError) Error() string {
	return fmt.Sprintf("TLS certificate of %s changed: pinned fingerprint %s, router presented %s (if the certificate was replaced on purpose, re-pin it with Re-pin certificate on the router's page in the console)",
		e.Address, e.Pinned, e.Got)
}

// Is makes errors.Is(err, ErrFingerprint) true.
func (e *FingerprintError) Is(target error) bool { return target == ErrFingerprint }

// TrapError is a `!trap` answer to a command. Kind is one of the sentinel
// errors (ErrPermission, ErrUnknown, ErrExists, ErrInvalid, ErrAuth or
// ErrTrap), so callers can use errors.Is(err, routeros.ErrPermission).
type TrapError struct {
	Command  string // the command word, e.g. /ip/traffic-flow/target/add
	Message  string // the router's message
	Category string // the router's category, "" when absent
	Kind     error
}

// Error names the command, the kind and the router's message.
func (e *TrapError) Error() string {
	if e.Kind == ErrTrap {
		return fmt.Sprintf("%s: router said %q", e.Command, e.Message)
	}
	return fmt.Sprintf("%s: %v: router said %q", e.Command, e.Kind, e.Message)
}

// Is matches the error's Kind.
func (e *TrapError) Is(target error) bool { return target == e.Kind }

// classifyTrap picks the kind of a trap from its message and category
// (categories from the API manual: 0 missing item or command, 1 argument
// value failure).
func classifyTrap(command, message, category string) *TrapError {
	kind := ErrTrap
	switch {
	case command == "/login":
		kind = ErrAuth
	case containsFold(message, "not enough permissions"):
		kind = ErrPermission
	case containsFold(message, "already have"):
		kind = ErrExists
	case containsFold(message, "unknown parameter"), containsFold(message, "no such command"),
		containsFold(message, "expected end of command"), category == "0":
		kind = ErrUnknown
	case category == "1":
		kind = ErrInvalid
	}
	return &TrapError{Command: command, Message: message, Category: category, Kind: kind}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}
