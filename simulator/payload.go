package simulator

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// ErrUnknownType is returned for an event type Zautic does not document.
var ErrUnknownType = errors.New("unknown event type")

// AllTypes stands for every documented type in a list of types.
const AllTypes = "all"

// Types returns the 23 documented event types, in Zautic's order.
func Types() []string {
	return slices.Clone(zautic.DocumentedTypes())
}

// ExpandTypes resolves a list of types in which "all" stands for every
// documented type; entries may also be comma-separated. Unknown types wrap
// ErrUnknownType. Order is kept and repeats are dropped.
func ExpandTypes(list []string) ([]string, error) {
	var out []string
	for _, entry := range list {
		for t := range strings.SplitSeq(entry, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
				continue
			case t == AllTypes:
				out = append(out, zautic.DocumentedTypes()...)
			case !slices.Contains(zautic.DocumentedTypes(), t):
				return nil, fmt.Errorf("%w %q: want one of %s, or %s", ErrUnknownType, t,
					strings.Join(zautic.DocumentedTypes(), ", "), AllTypes)
			default:
				out = append(out, t)
			}
		}
	}
	return dedupe(out), nil
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	out := list[:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Generator builds events whose ids are unique per sequence number within a
// generator, and random across generators, so that every run of the
// simulator sends events the forwarder has never seen.
type Generator struct {
	seeds [4]uint64
	now   func() time.Time
}

// NewGenerator returns a generator with random seeds.
func NewGenerator() *Generator {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	g := &Generator{now: time.Now}
	for i := range g.seeds {
		g.seeds[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return g
}

// NewSeededGenerator returns a deterministic generator, for tests and
// reproducible runs; now stamps the events (time.Now when nil).
func NewSeededGenerator(seed uint64, now func() time.Time) *Generator {
	if now == nil {
		now = time.Now
	}
	g := &Generator{now: now}
	for i := range g.seeds {
		seed = mix(seed + uint64(i) + 1)
		g.seeds[i] = seed
	}
	return g
}

var defaultGenerator = NewGenerator()

// Payload builds event number seq of eventType with the process's generator.
func Payload(eventType string, seq uint64) ([]byte, error) {
	return defaultGenerator.Payload(eventType, seq)
}

// mix is splitmix64's finaliser: a bijection on uint64, so distinct inputs
// give distinct ids, that looks random.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// id128 is 32 hex characters, unique per seq for a given pair of seeds.
func id128(a, b, seq uint64) string {
	var buf [32]byte
	hexWord(buf[:16], mix(a^seq))
	hexWord(buf[16:], mix(b+seq))
	return string(buf[:])
}

func hexWord(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		dst[i] = digits[v&0xf]
		v >>= 4
	}
}

// EventID is the id of event seq: "evt_" and 32 hex characters, like the
// quickstart's sample.
func (g *Generator) EventID(seq uint64) string {
	return "evt_" + id128(g.seeds[0], g.seeds[1], seq)
}

// DeliveryID is the X-Zautic-Delivery-Id of delivery seq.
func (g *Generator) DeliveryID(seq uint64) string {
	return "dlv_" + id128(g.seeds[2], g.seeds[3], seq)
}

// envelope is Zautic's event wrapper, fields in the documented order.
type envelope struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Created   int64  `json:"created"`
	CreatedAt string `json:"created_at"`
	Livemode  bool   `json:"livemode"`
	Data      struct {
		Object any `json:"object"`
	} `json:"data"`
}

// Payload builds event seq of eventType: the documented envelope with a
// data.object shaped for the type's family. If the type is not documented,
// ErrUnknownType is returned.
func (g *Generator) Payload(eventType string, seq uint64) ([]byte, error) {
	family, action, _ := strings.Cut(eventType, ".")
	build, ok := families[family]
	if !ok || !slices.Contains(zautic.DocumentedTypes(), eventType) {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, eventType)
	}
	now := g.now().UTC()
	ev := envelope{
		ID:        g.EventID(seq),
		Type:      eventType,
		Created:   now.Unix(),
		CreatedAt: now.Format("2006-01-02T15:04:05.000Z"),
		Livemode:  false, // simulated events are never live
	}
	ev.Data.Object = build(action, g.values(seq, now))
	return json.Marshal(ev)
}

// values are the pseudo-random ingredients of one event.
type values struct {
	r   uint64 // drawn from by pick
	now time.Time
}

func (g *Generator) values(seq uint64, now time.Time) *values {
	return &values{r: mix(g.seeds[0] ^ mix(seq)), now: now}
}

// pick draws a number in [0, n).
func (v *values) pick(n int) int {
	v.r = mix(v.r)
	return int(v.r % uint64(n))
}

// phone is an Indian mobile number in E.164 without the plus, like the sample.
func (v *values) phone() string {
	return "91" + strconv.Itoa(7+v.pick(3)) + fmt.Sprintf("%09d", v.pick(1_000_000_000))
}

// messageID looks like a WhatsApp message id: 22 upper-case hex characters.
func (v *values) messageID() string {
	v.r = mix(v.r)
	a := v.r
	v.r = mix(v.r)
	return strings.ToUpper(fmt.Sprintf("3EB0%016X%02X", a, v.r&0xff))
}

func (v *values) deviceID() int { return 100 + v.pick(50) }

var firstNames = []string{"Aarav", "Diya", "Ishaan", "Meera", "Kabir", "Ananya", "Rohan", "Saanvi"}
var lastNames = []string{"Sharma", "Patel", "Iyer", "Khan", "Reddy", "Gupta", "Nair", "Singh"}

func (v *values) name() (first, last string) {
	return firstNames[v.pick(len(firstNames))], lastNames[v.pick(len(lastNames))]
}

// families builds data.object for each family of types, given the action
// (the part after the dot).
var families = map[string]func(action string, v *values) any{
	"message":  messageObject,
	"device":   deviceObject,
	"contact":  contactObject,
	"group":    groupObject,
	"template": templateObject,
	"campaign": campaignObject,
	"webhook":  webhookObject,
}

// MessageObject is data.object of message.* events.
type MessageObject struct {
	MessageID string        `json:"message_id"`
	Phone     string        `json:"phone"`
	DeviceID  int           `json:"device_id"`
	Status    string        `json:"status"`
	Direction string        `json:"direction"`
	Type      string        `json:"type"`
	Text      string        `json:"text,omitempty"`
	Error     *MessageError `json:"error,omitempty"`
	Timestamp int64         `json:"timestamp"`
}

// MessageError says why a message.failed event failed.
type MessageError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

var outgoingTexts = []string{"Your order has shipped.", "Your appointment is confirmed for tomorrow.", "Your OTP is 482913."}
var incomingTexts = []string{"Hi, is my order shipped?", "Can I reschedule to Friday?", "Thanks!"}
var failures = []MessageError{{131026, "Message undeliverable"}, {131047, "Re-engagement message window expired"}, {131051, "Unsupported message type"}}

func messageObject(action string, v *values) any {
	m := MessageObject{
		MessageID: v.messageID(), Phone: v.phone(), DeviceID: v.deviceID(),
		Status: action, Direction: "outgoing", Type: "text", Timestamp: v.now.Unix(),
	}
	switch action {
	case "sent":
		m.Text = outgoingTexts[v.pick(len(outgoingTexts))]
	case "received":
		m.Direction = "incoming"
		m.Text = incomingTexts[v.pick(len(incomingTexts))]
	case "failed":
		m.Error = &failures[v.pick(len(failures))]
	}
	return m
}

// DeviceObject is data.object of device.* events.
type DeviceObject struct {
	DeviceID  int    `json:"device_id"`
	Phone     string `json:"phone"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Timestamp int64  `json:"timestamp"`
}

var disconnectReasons = []string{"logged_out", "connection_lost", "phone_offline"}

func deviceObject(action string, v *values) any {
	d := DeviceObject{DeviceID: v.deviceID(), Phone: v.phone(), Status: action, Timestamp: v.now.Unix()}
	d.Name = "Support line " + strconv.Itoa(1+v.pick(9))
	if action == "disconnected" {
		d.Reason = disconnectReasons[v.pick(len(disconnectReasons))]
	}
	return d
}

// ContactObject is data.object of contact.* events; a deleted contact
// carries its id, phone and Deleted only.
type ContactObject struct {
	ContactID int      `json:"contact_id"`
	Phone     string   `json:"phone"`
	Name      string   `json:"name,omitempty"`
	Email     string   `json:"email,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Deleted   bool     `json:"deleted,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
	UpdatedAt string   `json:"updated_at,omitempty"`
}

var contactTags = []string{"customer", "lead", "vip", "newsletter", "support"}

func contactObject(action string, v *values) any {
	c := ContactObject{ContactID: 10_000 + v.pick(90_000), Phone: v.phone()}
	if action == "deleted" {
		c.Deleted = true
		return c
	}
	first, last := v.name()
	c.Name = first + " " + last
	c.Email = strings.ToLower(first+"."+last) + "@example.com"
	c.Tags = []string{contactTags[v.pick(len(contactTags))]}
	stamp := v.now.Format(time.RFC3339)
	c.UpdatedAt = stamp
	c.CreatedAt = stamp
	if action == "updated" {
		c.CreatedAt = v.now.Add(-time.Duration(1+v.pick(90)) * 24 * time.Hour).Format(time.RFC3339)
	}
	return c
}

// GroupObject is data.object of group.* events.
type GroupObject struct {
	GroupID       int    `json:"group_id"`
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	ContactsCount int    `json:"contacts_count"`
	Deleted       bool   `json:"deleted,omitempty"`
}

var groupNames = []string{"Newsletter", "VIP customers", "Trial users", "Pune store", "Webinar attendees"}

func groupObject(action string, v *values) any {
	g := GroupObject{GroupID: 1_000 + v.pick(9_000), Name: groupNames[v.pick(len(groupNames))]}
	switch action {
	case "deleted":
		g.Deleted = true
	case "created":
		g.Description = "Created from the dashboard"
	default:
		g.Description = "Updated from the dashboard"
		g.ContactsCount = 1 + v.pick(5_000)
	}
	return g
}

// TemplateObject is data.object of template.* events.
type TemplateObject struct {
	TemplateID int    `json:"template_id"`
	Name       string `json:"name"`
	Category   string `json:"category"`
	Language   string `json:"language"`
	Status     string `json:"status"`
	Body       string `json:"body,omitempty"`
	Deleted    bool   `json:"deleted,omitempty"`
}

var templates = []struct{ name, category, body string }{
	{"order_shipped", "UTILITY", "Hi {{1}}, your order {{2}} has shipped."},
	{"appointment_reminder", "UTILITY", "Reminder: your appointment is on {{1}} at {{2}}."},
	{"diwali_offer", "MARKETING", "Hi {{1}}, enjoy {{2}}% off this Diwali!"},
}

func templateObject(action string, v *values) any {
	tpl := templates[v.pick(len(templates))]
	t := TemplateObject{TemplateID: 500 + v.pick(500), Name: tpl.name, Category: tpl.category, Language: "en"}
	switch action {
	case "deleted":
		t.Status, t.Deleted = "deleted", true
	case "created":
		t.Status, t.Body = "pending", tpl.body
	default:
		t.Status, t.Body = "approved", tpl.body
	}
	return t
}

// CampaignObject is data.object of campaign.* events.
type CampaignObject struct {
	CampaignID int              `json:"campaign_id"`
	Name       string           `json:"name"`
	DeviceID   int              `json:"device_id"`
	Status     string           `json:"status"`
	Progress   CampaignProgress `json:"progress"`
	Timestamp  int64            `json:"timestamp"`
}

// CampaignProgress counts a campaign's messages; Sent+Pending is Total.
type CampaignProgress struct {
	Total     int `json:"total"`
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	Read      int `json:"read"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
	Percent   int `json:"percent"`
}

// campaignStatus is the campaign's status after each action.
var campaignStatus = map[string]string{
	"started": "running", "paused": "paused", "resumed": "running",
	"stopped": "stopped", "cancelled": "cancelled", "completed": "completed",
}

var campaignNames = []string{"Diwali sale", "Order follow-up", "Webinar reminder", "Cart recovery"}

func campaignObject(action string, v *values) any {
	total := 100 * (1 + v.pick(50))
	sent := 0
	switch action {
	case "completed":
		sent = total
	case "started":
	default:
		sent = total * (1 + v.pick(99)) / 100
	}
	failed := sent * v.pick(5) / 100
	delivered := sent - failed
	read := delivered * (40 + v.pick(50)) / 100
	return CampaignObject{
		CampaignID: 2_000 + v.pick(8_000),
		Name:       campaignNames[v.pick(len(campaignNames))],
		DeviceID:   v.deviceID(),
		Status:     campaignStatus[action],
		Progress: CampaignProgress{
			Total: total, Sent: sent, Delivered: delivered, Read: read, Failed: failed,
			Pending: total - sent, Percent: 100 * sent / total,
		},
		Timestamp: v.now.Unix(),
	}
}

// WebhookObject is data.object of webhook.test, the dashboard's Test button.
type WebhookObject struct {
	WebhookID int    `json:"webhook_id"`
	Message   string `json:"message"`
	Test      bool   `json:"test"`
}

func webhookObject(_ string, v *values) any {
	return WebhookObject{WebhookID: 1 + v.pick(999), Message: "This is a test event from Zautic", Test: true}
}
