package store

import (
	"net/netip"
	"time"
)

// Sources of subscriber records, from the most to the least trusted.
const (
	SourceCSV    = "csv"    // imported by the operator (`flowbox subscribers import`)
	SourceQueue  = "queue"  // /queue/simple name (target address)
	SourcePPP    = "ppp"    // /ppp/active name (remote address)
	SourceDHCP   = "dhcp"   // /ip/dhcp-server/lease comment or host-name
	SourceDHCPv6 = "dhcpv6" // /ipv6/dhcp-server/binding comment, PPPoE login or DUID (delegated prefix)
	SourceARP    = "arp"    // /ip/arp comment
)

// SourceRank orders sources: a lower rank wins when several records name
// the same address at the same time. Unknown sources rank last.
func SourceRank(source string) int {
	switch source {
	case SourceCSV:
		return 0
	case SourceQueue:
		return 1
	case SourcePPP:
		return 2
	case SourceDHCP, SourceDHCPv6:
		return 3
	case SourceARP:
		return 4
	}
	return 5
}

// Subscriber is one period during which an address (or, for imported
// rows, a prefix) belonged to a subscriber.
type Subscriber struct {
	ID int64
	// RouterID is the router the record was learned from; 0 for imported
	// records.
	RouterID   int64
	Prefix     netip.Prefix // a host prefix (/32, /128) for learned records
	Name       string
	CustomerID string // from the CSV import, or found by enrich.customer-id-pattern; "" when unknown
	MAC        uint64 // 48-bit, 0 when unknown
	Source     string // one of the Source* constants
	ValidFrom  time.Time
	ValidTo    time.Time // zero while the record is current
}

// SubscriberRef names a subscriber as flows and reports do: the router
// whose records name it (0 for imported CSV records) and the name.
type SubscriberRef struct {
	RouterID int64
	Name     string
}

// SubscriberEnd closes the current record ID at At.
type SubscriberEnd struct {
	ID int64
	At time.Time
}

// InterfaceName is one period during which a router's SNMP ifIndex (as
// flow records carry it) had a name. Enrichment keeps this history because
// RouterOS gives dynamic interfaces (PPPoE, L2TP) a new ifIndex per
// session and reuses the numbers, so the inventory's current names
// (Router.Interfaces) do not name the interfaces of older flows.
type InterfaceName struct {
	ID       int64
	RouterID int64
	Index    uint32
	Name     string
	// ValidFrom is zero for the first name flowbox learned for an index: it
	// also names the index before it was first seen.
	ValidFrom time.Time
	ValidTo   time.Time // zero while the name is current
}

// InterfaceEnd closes the current record ID at At.
type InterfaceEnd struct {
	ID int64
	At time.Time
}

// User is one console user. PasswordHash is a bcrypt hash; the clear
// password is never stored.
type User struct {
	ID           int64
	Name         string
	PasswordHash string
	// Role is what the user may do.
	Role      Role
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Token is an API token for scripts. Only the SHA-256 of the secret is kept
// (Hash, hex); the secret itself is shown once when the token is created.
type Token struct {
	ID   int64
	Name string
	// Hash is the hex SHA-256 of the token secret.
	Hash string
	// Prefix is the first characters of the secret, to recognise a token
	// in a list without revealing it.
	Prefix string
	// UserID is the owner's user id; the token dies with its owner. 0
	// for a token made before users existed, which is refused.
	UserID int64
	// Owner and OwnerRole are the owner's name and current role (read
	// from the users table; CreateToken ignores them).
	Owner     string
	OwnerRole Role
	// Role is what the token may do, at most its owner's role (a token
	// whose owner was demoted does only what the owner still may).
	Role      Role
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero for never.
	ExpiresAt time.Time
	LastUsed  time.Time // zero when never used
}

// EffectiveRole is what a token may do: its role, at most its owner's
// current one.
func (t Token) EffectiveRole() Role { return MinRole(t.Role, t.OwnerRole) }

// Session is a console login kept across restarts. Only the hex SHA-256
// of the session id (the cookie value) is stored.
type Session struct {
	// Hash is the hex SHA-256 of the session id.
	Hash      string
	User      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AllowedExporter is an exporter prefix an operator accepted (from the
// console's "Unknown exporters" or `flowbox exporters allow`): flows from
// it are stored like those of collector.allowed-exporters.
type AllowedExporter struct {
	Prefix  netip.Prefix
	AddedBy string
	AddedAt time.Time
}
