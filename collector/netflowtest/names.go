package netflowtest

// Name parts for subscribers: a rural wireless ISP's customer list, mixing
// Spanish, Portuguese and English names as in the Americas, where WISPs are
// most common.
var firstNames = [...]string{
	"Maria", "Jose", "Juan", "Ana", "Carlos", "Luis", "Carmen", "Pedro", "Rosa", "Miguel",
	"Lucia", "Jorge", "Elena", "Diego", "Sofia", "Pablo", "Isabel", "Andres", "Paula", "Javier",
	"Laura", "Fernando", "Marta", "Ricardo", "Gabriela", "Roberto", "Daniela", "Alejandro", "Valeria", "Sergio",
	"John", "Mary", "James", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
	"David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
	"Joao", "Francisca", "Antonio", "Adriana", "Marcos", "Fernanda", "Rafael", "Camila", "Tiago", "Beatriz",
}

var lastNames = [...]string{
	"Garcia", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Perez", "Sanchez", "Ramirez", "Torres",
	"Flores", "Rivera", "Gomez", "Diaz", "Cruz", "Morales", "Reyes", "Gutierrez", "Ortiz", "Ramos",
	"Castillo", "Vargas", "Romero", "Herrera", "Medina", "Aguilar", "Mendoza", "Castro", "Silva", "Rojas",
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
	"Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
	"Santos", "Oliveira", "Souza", "Pereira", "Costa", "Almeida", "Carvalho", "Ribeiro", "Ferreira", "Barbosa",
}

// hostPrefixes are the DHCP host names that customer routers and devices
// send (the random suffix is added by the model).
var hostPrefixes = [...]string{
	"TL-WR840N", "Archer-C6", "Tenda-AC10", "MikroTik", "hAP-ac2", "LiteBeam-5AC", "NanoStation-M5",
	"DESKTOP-", "LAPTOP-", "android-", "Galaxy-A52", "iPhone", "Chromecast", "Roku-Express",
}

// cpeOUIs are MAC prefixes of the customer equipment WISPs deploy:
// Ubiquiti, MikroTik, TP-Link, Tenda, Cambium.
var cpeOUIs = [...]uint64{
	0x24a43c, 0x788a20, 0xfcecda, 0x7483c2, // Ubiquiti
	0x4c5e0c, 0x6c3b6b, 0xe48d8c, 0xcc2de0, // MikroTik
	0x50c7bf, 0xec086b, 0x98dac4, // TP-Link
	0xc83a35, // Tenda
	0x000456, // Cambium
}

// sectorNames name the AP sectors that subscribers hang off.
var sectorNames = [...]string{
	"north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest",
}

// plans are the service plans (RouterOS max-limit upload/download).
var plans = [...]struct {
	name     string
	up, down uint64 // bits/s
}{
	{"5M/20M", 5e6, 20e6},
	{"10M/50M", 10e6, 50e6},
	{"20M/100M", 20e6, 100e6},
	{"3M/10M", 3e6, 10e6},
}
