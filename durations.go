package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// checkDuration is the decode hook of duration keys. A number without a unit
// is an error: YAML reads "tolerance: 300" as an integer, which would
// otherwise decode as 300ns (the environment's "300" fails too, with less to
// say). Zero needs no unit. A string that is no duration ("5 minutes") is
// an error that lists the units, which time.ParseDuration's "unknown unit"
// does not.
func checkDuration(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return data, nil
		}
		return nil, unitlessDuration(data)
	case reflect.String:
		s := strings.TrimSpace(data.(string))
		if n, err := strconv.ParseFloat(s, 64); err == nil && n != 0 {
			return nil, unitlessDuration(data)
		}
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%q is not a duration: use a number with a unit such as 300ms, 5s, 5m, 1h", data)
		}
		return s, nil
	}
	return data, nil
}

func unitlessDuration(data any) error {
	return fmt.Errorf("%v has no unit: write it as a duration such as %vs or %vms", data, data, data)
}
