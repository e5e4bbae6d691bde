package main

// The part of Grafana's dashboard JSON model (schemaVersion 39, Grafana 10 and later) the dashboard
// uses. Fields are in the order Grafana writes them, so an exported copy diffs cleanly against ours.

// Dashboard is a Grafana dashboard.
type Dashboard struct {
	Annotations   Annotations `json:"annotations"`
	Description   string      `json:"description"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Links         []Link      `json:"links"`
	Panels        []Panel     `json:"panels"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Tags          []string    `json:"tags"`
	Templating    Templating  `json:"templating"`
	Time          TimeRange   `json:"time"`
	Timezone      string      `json:"timezone"`
	Title         string      `json:"title"`
	UID           string      `json:"uid"`
	Version       int         `json:"version"`
}

// Annotations are the dashboard's annotation queries: Grafana's own (alerts and annotations) only.
type Annotations struct {
	List []AnnotationQuery `json:"list"`
}

// AnnotationQuery is one annotation source.
type AnnotationQuery struct {
	BuiltIn    int           `json:"builtIn"`
	Datasource DatasourceRef `json:"datasource"`
	Enable     bool          `json:"enable"`
	Hide       bool          `json:"hide"`
	IconColor  string        `json:"iconColor"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
}

// Link is a link in the dashboard's header.
type Link struct {
	Icon        string `json:"icon"`
	TargetBlank bool   `json:"targetBlank"`
	Title       string `json:"title"`
	Type        string `json:"type"`
	URL         string `json:"url"`
}

// DatasourceRef names a data source; UID may be a variable ("${datasource}").
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Panel is a panel, or a row (Type "row") that heads the panels below it.
type Panel struct {
	Collapsed       *bool            `json:"collapsed,omitempty"`
	Datasource      *DatasourceRef   `json:"datasource,omitempty"`
	Description     string           `json:"description,omitempty"`
	FieldConfig     *FieldConfig     `json:"fieldConfig,omitempty"`
	GridPos         GridPos          `json:"gridPos"`
	ID              int              `json:"id"`
	Options         map[string]any   `json:"options,omitempty"`
	Panels          []Panel          `json:"panels,omitempty"`
	Targets         []Target         `json:"targets,omitempty"`
	Title           string           `json:"title"`
	Transformations []Transformation `json:"transformations,omitempty"`
	Type            string           `json:"type"`
}

// Target is a Prometheus query of a panel.
type Target struct {
	Datasource   DatasourceRef `json:"datasource"`
	EditorMode   string        `json:"editorMode"`
	Expr         string        `json:"expr"`
	Format       string        `json:"format"`
	Instant      bool          `json:"instant"`
	LegendFormat string        `json:"legendFormat"`
	Range        bool          `json:"range"`
	RefID        string        `json:"refId"`
}

// FieldConfig is how a panel shows its fields: defaults, and overrides for some of them.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []Override    `json:"overrides"`
}

// FieldDefaults are the settings every field starts with.
type FieldDefaults struct {
	Color      *FieldColor    `json:"color,omitempty"`
	Custom     map[string]any `json:"custom,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Mappings   []ValueMapping `json:"mappings"`
	Min        *float64       `json:"min,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Unit       string         `json:"unit,omitempty"`
}

// FieldColor is how a field is coloured: "thresholds", "palette-classic", or "fixed" with FixedColor.
type FieldColor struct {
	FixedColor string `json:"fixedColor,omitempty"`
	Mode       string `json:"mode"`
}

// Thresholds colour values: each step from its value up; the first step's value is null (from -∞).
type Thresholds struct {
	Mode  string          `json:"mode"`
	Steps []ThresholdStep `json:"steps"`
}

// ThresholdStep is one colour from Value up.
type ThresholdStep struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// ValueMapping shows some values as text.
type ValueMapping struct {
	Options map[string]MappedValue `json:"options"`
	Type    string                 `json:"type"`
}

// MappedValue is the text (and colour) a value is shown as.
type MappedValue struct {
	Color string `json:"color,omitempty"`
	Index int    `json:"index"`
	Text  string `json:"text"`
}

// Override changes the settings of the fields a matcher picks.
type Override struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher picks fields, e.g. {ID: "byName", Options: "Time left"}.
type Matcher struct {
	ID      string `json:"id"`
	Options string `json:"options"`
}

// Property is one setting of an override.
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// Transformation reshapes a panel's query results (merge, organize, ...).
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a dashboard variable: a data source picker or a query over label values.
type Variable struct {
	AllValue   string         `json:"allValue,omitempty"`
	Current    map[string]any `json:"current"`
	Datasource *DatasourceRef `json:"datasource,omitempty"`
	Definition string         `json:"definition,omitempty"`
	Hide       int            `json:"hide"`
	IncludeAll bool           `json:"includeAll"`
	Label      string         `json:"label"`
	Multi      bool           `json:"multi"`
	Name       string         `json:"name"`
	Options    []any          `json:"options"`
	Query      any            `json:"query"`
	Refresh    int            `json:"refresh"`
	Regex      string         `json:"regex"`
	Sort       int            `json:"sort,omitempty"`
	Type       string         `json:"type"`
}

// TimeRange is the dashboard's default time range.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}
