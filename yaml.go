package main

import "go.yaml.in/yaml/v3"

func yamlUnmarshal(in []byte, out any) error { return yaml.Unmarshal(in, out) }
