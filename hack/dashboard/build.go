package main

import "fmt"

// datasource is every panel's and query's data source: the dashboard's variable.
var datasource = DatasourceRef{Type: "prometheus", UID: "${datasource}"}

const (
	day = 86400.0
	// ns filters a certrollout series by the namespace variable.
	ns = `namespace=~"$namespace"`
)

func ptr[T any](v T) *T { return &v }

// steps builds thresholds: the first colour from -∞, then each colour from its value up.
func steps(base string, from ...any) *Thresholds {
	th := &Thresholds{Mode: "absolute", Steps: []ThresholdStep{{Color: base}}}
	for i := 0; i+1 < len(from); i += 2 {
		th.Steps = append(th.Steps, ThresholdStep{Color: from[i+1].(string), Value: ptr(from[i].(float64))})
	}
	return th
}

// timeLeft colours a time left in seconds as the alerts judge it: expired red, under 7 days orange,
// under 28 days yellow, later green.
func timeLeft() *Thresholds {
	return steps("red", 0.0, "orange", 7*day, "yellow", 28*day, "green")
}

// series is a range query drawn as a time series.
func series(ref, expr, legend string) Target {
	return Target{Datasource: datasource, EditorMode: "code", Expr: expr, Format: "time_series", LegendFormat: legend, Range: true, RefID: ref}
}

// instant is a query evaluated once, at the end of the range, as a table.
func instant(ref, expr string) Target {
	return Target{Datasource: datasource, EditorMode: "code", Expr: expr, Format: "table", Instant: true, LegendFormat: "__auto", RefID: ref}
}

// single is an instant query shown as one number with a name.
func single(ref, expr, legend string) Target {
	t := instant(ref, expr)
	t.Format, t.LegendFormat = "time_series", legend
	return t
}

func panel(typ, title, desc string, targets ...Target) Panel {
	return Panel{
		Type: typ, Title: title, Description: desc, Datasource: ptr(datasource), Targets: targets,
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Mappings: []ValueMapping{}}, Overrides: []Override{}},
	}
}

// stat shows one number per query, coloured by thresholds.
func stat(title, desc string, th *Thresholds, targets ...Target) Panel {
	p := panel("stat", title, desc, targets...)
	p.FieldConfig.Defaults.Color = &FieldColor{Mode: "thresholds"}
	p.FieldConfig.Defaults.Thresholds = th
	p.Options = map[string]any{
		"colorMode": "background", "graphMode": "none", "justifyMode": "auto", "orientation": "auto", "textMode": "value_and_name",
		"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
	}
	return p
}

// counts is a stat of several counts, each in a fixed colour, e.g. certificates per time-left class.
func counts(title, desc string, colours []string, targets ...Target) Panel {
	p := stat(title, desc, steps("text"), targets...)
	for i, t := range targets {
		p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, Override{
			Matcher:    Matcher{ID: "byName", Options: t.LegendFormat},
			Properties: []Property{{ID: "color", Value: FieldColor{Mode: "fixed", FixedColor: colours[i]}}},
		})
	}
	return p
}

// timeseries draws the queries over time.
func timeseries(title, desc, unit string, stacked bool, targets ...Target) Panel {
	p := panel("timeseries", title, desc, targets...)
	p.FieldConfig.Defaults.Unit = unit
	p.FieldConfig.Defaults.Color = &FieldColor{Mode: "palette-classic"}
	stacking := "none"
	if stacked {
		stacking = "normal"
	}
	p.FieldConfig.Defaults.Custom = map[string]any{
		"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never", "spanNulls": false,
		"stacking": map[string]any{"group": "A", "mode": stacking},
	}
	p.Options = map[string]any{
		"legend":  map[string]any{"calcs": []string{"lastNotNull", "max"}, "displayMode": "table", "placement": "bottom", "showLegend": true},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}
	return p
}

// column is how a table shows one query's value: its header, unit and, for a time left, its colours.
type column struct {
	header string
	unit   string
	colour *Thresholds
}

// table merges instant queries on their labels into one table: a column per label, and one per query's
// value (columns[i] for targets[i]); the first value column sorts it.
func table(title, desc string, columns []column, targets ...Target) Panel {
	p := panel("table", title, desc, targets...)
	rename := map[string]any{}
	for i, c := range columns {
		field := "Value"
		if len(targets) > 1 {
			field = fmt.Sprintf("Value #%s", targets[i].RefID)
		}
		rename[field] = c.header
		props := []Property{{ID: "unit", Value: c.unit}}
		if c.colour != nil {
			props = append(props,
				Property{ID: "thresholds", Value: c.colour},
				Property{ID: "color", Value: FieldColor{Mode: "thresholds"}},
				Property{ID: "custom.cellOptions", Value: map[string]any{"type": "color-background"}})
		}
		p.FieldConfig.Overrides = append(p.FieldConfig.Overrides, Override{Matcher: Matcher{ID: "byName", Options: c.header}, Properties: props})
	}
	p.Transformations = []Transformation{
		{ID: "merge", Options: map[string]any{}},
		{ID: "organize", Options: map[string]any{"excludeByName": map[string]any{"Time": true}, "indexByName": map[string]any{}, "renameByName": rename}},
	}
	p.Options = map[string]any{
		"cellHeight": "sm", "showHeader": true,
		"footer": map[string]any{"show": false, "reducer": []string{"sum"}, "fields": ""},
		"sortBy": []map[string]any{{"displayName": columns[0].header, "desc": false}},
	}
	return p
}
