package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// refuseUnitlessDuration makes a number without a unit an error for a
// duration key: YAML reads "tolerance: 300" as an integer, which would
// otherwise decode as 300ns. The environment already refuses "300"
// (time.ParseDuration wants a unit) but says less; both get this message.
// Zero needs no unit.
func refuseUnitlessDuration(from, to reflect.Type, data any) (any, error) {
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
		if n, err := strconv.ParseFloat(strings.TrimSpace(data.(string)), 64); err == nil && n != 0 {
			return nil, unitlessDuration(data)
		}
	}
	return data, nil
}

func unitlessDuration(data any) error {
	return fmt.Errorf("%v has no unit: write it as a duration such as %vs or %vms", data, data, data)
}
