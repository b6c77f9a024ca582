package main

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// endpointsFromText lets FORWARDER_ENDPOINTS carry the endpoints list as
// YAML or JSON text, the only way an environment variable can hold a list
// of sections: '[{name: acme, secrets_file: /run/secrets/acme}]'.
func endpointsFromText(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[[]forwarder.EndpointConfig]() || from.Kind() != reflect.String {
		return data, nil
	}
	var list []map[string]any
	if err := yaml.Unmarshal([]byte(data.(string)), &list); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON list of endpoints, such as [{name: acme, secrets_file: /run/secrets/acme}]: %w", err)
	}
	return list, nil
}
