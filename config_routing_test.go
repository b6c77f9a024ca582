package main

import "maps"

// The overrides of the routing keys (subjects, CloudEvents, endpoints), kept
// beside envOverrides so that its table stays as it was.
func init() {
	maps.Copy(envOverrides, map[string]envOverride{
		"publish.cloudevents":             {env: "true", want: "true"},
		"publish.cloudevents_type_prefix": {env: "io.example.zautic", want: "io.example.zautic"},
		"webhook.subject":                 {env: "{prefix}.{type}.{data.object.device_id}", want: "{prefix}.{type}.{data.object.device_id}"},
		"webhook.cloudevents_source":      {env: "https://zautic.example/acct/1", want: "https://zautic.example/acct/1"},
		"endpoints":                       {env: "[{name: acme, secrets: [s1]}]", want: "[map[cloudevents_source: events:map[allow:[]] name:acme path: secrets:[s1] secrets_file: subject: subject_prefix:]]"},
	})
}
