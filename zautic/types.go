package zautic

// documentedTypes are the event types Zautic's documentation lists.
var documentedTypes = [...]string{
	"message.sent", "message.delivered", "message.read", "message.failed", "message.received",
	"device.connected", "device.disconnected",
	"contact.created", "contact.updated", "contact.deleted",
	"group.created", "group.updated", "group.deleted",
	"template.created", "template.updated", "template.deleted",
	"campaign.started", "campaign.paused", "campaign.resumed", "campaign.stopped", "campaign.cancelled", "campaign.completed",
	"webhook.test",
}

// DocumentedTypes returns the 23 event types Zautic documents, in the order
// of its documentation. The slice is a copy: the caller may change it.
func DocumentedTypes() []string {
	return append([]string(nil), documentedTypes[:]...)
}
