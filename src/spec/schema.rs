//! The shape of a Job manifest as kjob reads it, derived from the serde types of this module:
//! a field exists here because it is a field of [`Job`](super::Job) or of a type inside it, so
//! a new field is one edit (the struct), not two.
//!
//! Deriving works by deserializing each type from a deserializer that answers every request with
//! an empty value and writes down what was asked: a struct tells it its (renamed) field names,
//! an `Option<i32>` asks for an integer, a `Vec<T>` for a sequence of `T`s. What serde cannot say
//! (fields the API server writes) is in the small tables below.
//!
//! Each field of an object is [`FieldKind::Honoured`] (with its shape), [`FieldKind::ServerSet`]
//! (written by the API server; dropped quietly), [`FieldKind::NotHonoured`] (a field of
//! Kubernetes' type that kjob cannot honour here: reported as a warning) or
//! [`FieldKind::Unknown`] (no such field in Kubernetes: an error, as `kubectl apply` with strict
//! field validation). Kubernetes' own fields are the generated table of [`super::k8s_fields`];
//! [`K8S_TYPE_NAMES`] names the upstream type of each of our structs.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::sync::OnceLock;

/// What kjob accepts at one place of a manifest.
#[derive(Debug, PartialEq)]
pub enum Shape {
    /// A value taken as it is (a string, a map of strings, a list of strings): its type is
    /// checked when the manifest is decoded.
    Any,
    /// `true` or `false`: YAML's `"false"` is a string, and must not pass for a bool.
    Boolean,
    /// An integer: a YAML `true` must not pass for 1.
    Integer,
    /// A list of items of this shape.
    List(Box<Shape>),
    Object(Object),
}

/// The fields of one object type.
#[derive(Debug, PartialEq)]
pub struct Object {
    /// The Rust type's name, for the tables below.
    pub type_name: &'static str,
    pub fields: Vec<(&'static str, Shape)>,
}

/// How kjob treats one field of an object.
#[derive(Debug, PartialEq)]
pub enum FieldKind<'a> {
    /// Read and run.
    Honoured(&'a Shape),
    /// Written by the API server (`kubectl get -o yaml` shows it): meaningless in a manifest,
    /// dropped without a word.
    ServerSet,
    /// A field of Kubernetes' type that is not read here: reported to the user (a warning) and
    /// dropped. Its value is Kubernetes' to check ([`K8sValue`]).
    NotHonoured(&'static K8sValue),
    /// Not a field of Kubernetes' type: a typo, refused as `kubectl apply` refuses it
    /// (`strict decoding error: unknown field "spec.backofLimit"`).
    Unknown,
}

/// The value of one field of a Kubernetes type, as its OpenAPI schema declares it
/// (`src/spec/k8s_fields.rs` is generated with these). Every field may also be `null`.
#[derive(Debug, PartialEq)]
pub enum K8sValue {
    String,
    Integer,
    Number,
    Boolean,
    /// `intstr.IntOrString`: an integer or a string (a port, a percentage).
    IntOrString,
    /// `resource.Quantity`: a string (`"500m"`, `"1Gi"`) or a number.
    Quantity,
    /// No declared shape (`FieldsV1`, `RawExtension`).
    Any,
    /// An object of the named upstream type (a key of `k8s_fields::K8S_TYPES`).
    Object(&'static str),
    List(&'static K8sValue),
    /// A map with keys of the user's choosing (labels, resource limits).
    Map(&'static K8sValue),
}

/// The upstream type of each of our structs (`None`: an extension of kjob's, whose every field
/// is its own). Fields of ours are checked against the upstream type's by the test
/// `every_honoured_field_exists_in_kubernetes`; a new struct needs a line here.
pub const K8S_TYPE_NAMES: &[(&str, Option<&str>)] = &[
    ("Job", Some("batch.v1.Job")),
    ("ObjectMeta", Some("meta.v1.ObjectMeta")),
    ("JobSpec", Some("batch.v1.JobSpec")),
    ("PodFailurePolicy", Some("batch.v1.PodFailurePolicy")),
    ("PodFailurePolicyRule", Some("batch.v1.PodFailurePolicyRule")),
    ("OnExitCodes", Some("batch.v1.PodFailurePolicyOnExitCodesRequirement")),
    ("OnPodConditionsPattern", Some("batch.v1.PodFailurePolicyOnPodConditionsPattern")),
    // `onExceptions` (callable pods) is kjob's own.
    ("OnExceptions", None),
    ("SuccessPolicy", Some("batch.v1.SuccessPolicy")),
    ("SuccessPolicyRule", Some("batch.v1.SuccessPolicyRule")),
    ("PodTemplateSpec", Some("core.v1.PodTemplateSpec")),
    ("PodSpec", Some("core.v1.PodSpec")),
    ("Container", Some("core.v1.Container")),
    ("EnvVar", Some("core.v1.EnvVar")),
    ("EnvVarSource", Some("core.v1.EnvVarSource")),
    ("ObjectFieldSelector", Some("core.v1.ObjectFieldSelector")),
    // One struct each for upstream's ConfigMap and Secret twins, whose fields are the same.
    ("KeySelector", Some("core.v1.ConfigMapKeySelector")),
    ("EnvFromSource", Some("core.v1.EnvFromSource")),
    ("EnvSourceRef", Some("core.v1.ConfigMapEnvSource")),
];

/// Fields of kjob's own on Kubernetes' types (`(our struct, field)`): honoured, and not
/// in the upstream schema.
pub const KJOB_EXTENSION_FIELDS: &[(&str, &str)] = &[("PodFailurePolicyRule", "onExceptions")];

/// The fields of an upstream type (`"core.v1.Container"`), sorted by name.
pub fn k8s_fields(type_name: &str) -> Option<&'static [(&'static str, K8sValue)]> {
    let types = super::k8s_fields::K8S_TYPES;
    types.binary_search_by(|(name, _)| (*name).cmp(type_name)).ok().map(|i| types[i].1)
}

/// The value of `field` in the upstream type `type_name`, if Kubernetes has that field.
pub fn k8s_field(type_name: &str, field: &str) -> Option<&'static K8sValue> {
    let fields = k8s_fields(type_name)?;
    fields.binary_search_by(|(name, _)| (*name).cmp(field)).ok().map(|i| &fields[i].1)
}

/// The upstream type of our struct `type_name`; `None` for kjob's extensions.
pub fn k8s_type_name(type_name: &str) -> Option<&'static str> {
    K8S_TYPE_NAMES.iter().find(|(ours, _)| *ours == type_name).and_then(|(_, theirs)| *theirs)
}

/// The field names of an object, ours and Kubernetes' (for "did you mean").
pub fn known_field_names(object: &Object) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = object.fields.iter().map(|(name, _)| *name).collect();
    if let Some(fields) = object.k8s_type().and_then(k8s_fields) {
        for (name, _) in fields {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names
}

/// The one field name of `candidates` close to the unknown `name` (a typo: a letter missed,
/// doubled, swapped or of the wrong case), if exactly one is closest; else `None`. Close means
/// an edit distance (case ignored) of at most 1 for names of up to 4 characters and 2 beyond,
/// so `backofLimit` finds `backoffLimit` and `foo` finds nothing.
pub fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    let mut tied = false;
    for candidate in candidates {
        let distance = edit_distance(&lower, &candidate.to_lowercase());
        if distance > limit {
            continue;
        }
        match best {
            Some((d, _)) if distance > d => {}
            Some((d, _)) if distance == d => tied = true,
            _ => {
                best = Some((distance, candidate));
                tied = false;
            }
        }
    }
    if tied {
        None
    } else {
        best.map(|(_, candidate)| candidate)
    }
}

/// Damerau–Levenshtein distance (optimal string alignment): insertions, deletions,
/// substitutions and swaps of neighbours each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// Fields the API server writes, by object type: a Job saved with `kubectl get -o yaml` loads
/// quietly.
const SERVER_SET: &[(&str, &[&str])] = &[
    ("Job", &["status"]),
    (
        "ObjectMeta",
        &["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"],
    ),
];

/// Labels the API server derives from a Job's uid (in its and its template's metadata): a saved
/// Job's are stale for a new one, and are dropped quietly.
pub const SERVER_SET_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];

/// Whether `spec.selector` is the API server's (dropped quietly) rather than the user's
/// (reported): it is the user's only with `manualSelector: true`. A `manualSelector: false` is
/// the default written out, dropped quietly too.
pub fn selector_is_server_set(manual_selector: Option<bool>) -> bool {
    manual_selector != Some(true)
}

/// Items dropped from their list when dropping what kjob does not honour emptied this field of
/// theirs: an env var read from a Secret, a ConfigMap or a resource limit has no value here, and
/// goes whole rather than being set to nothing.
pub const DROPPED_WHEN_EMPTIED: &[(&str, &str)] = &[("EnvVar", "valueFrom")];

/// The one API version and kind kjob runs.
pub const API_VERSION: &str = "batch/v1";
pub const KIND: &str = "Job";

impl Object {
    pub fn field(&self, name: &str) -> FieldKind<'_> {
        if let Some((_, shape)) = self.fields.iter().find(|(field, _)| *field == name) {
            return FieldKind::Honoured(shape);
        }
        let server_set = SERVER_SET
            .iter()
            .any(|(type_name, fields)| *type_name == self.type_name && fields.contains(&name));
        if server_set {
            return FieldKind::ServerSet;
        }
        match self.k8s_type() {
            Some(theirs) => match k8s_field(theirs, name) {
                Some(value) => FieldKind::NotHonoured(value),
                None => FieldKind::Unknown,
            },
            // An extension of kjob's has only the fields it reads.
            None => FieldKind::Unknown,
        }
    }

    /// The upstream type this struct mirrors (`None` for kjob's own).
    pub fn k8s_type(&self) -> Option<&'static str> {
        k8s_type_name(self.type_name)
    }
}

/// The shape of a `batch/v1` Job manifest, as kjob reads it.
pub fn job_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(shape_of::<super::Job>)
}

/// The shape of `T`, asked of its `Deserialize` implementation.
pub fn shape_of<T: DeserializeOwned>() -> Shape {
    let mut shape = Shape::Any;
    // The value made of empty answers is of no use (and may even be refused); the shape is.
    let _ = T::deserialize(Recorder { shape: &mut shape });
    shape
}

/// Deserializes `T` made of empty values and records the shape it asked for.
struct Recorder<'a> {
    shape: &'a mut Shape,
}

impl Recorder<'_> {
    fn leaf<'de, V: Visitor<'de>>(self, shape: Shape, value: V::Value) -> Result<V::Value, de::value::Error> {
        *self.shape = shape;
        Ok(value)
    }
}

macro_rules! record_integers {
    ($($method:ident => $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let value = visitor.$visit(0)?;
            self.leaf::<V>(Shape::Integer, value)
        }
    )*};
}

macro_rules! record_any {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let value = visitor.visit_str("")?;
            self.leaf::<V>(Shape::Any, value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let value = visitor.visit_unit()?;
        self.leaf::<V>(Shape::Any, value)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let value = visitor.visit_bool(false)?;
        self.leaf::<V>(Shape::Boolean, value)
    }

    record_integers!(
        deserialize_i8 => visit_i64, deserialize_i16 => visit_i64, deserialize_i32 => visit_i64,
        deserialize_i64 => visit_i64, deserialize_u8 => visit_u64, deserialize_u16 => visit_u64,
        deserialize_u32 => visit_u64, deserialize_u64 => visit_u64
    );
    record_any!(
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_identifier
    );

    // None of the Job's types is a tuple, an enum or a newtype: no shape of their own.
    serde::forward_to_deserialize_any! { unit unit_struct newtype_struct tuple tuple_struct enum ignored_any }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let mut item = Shape::Any;
        let value = visitor.visit_seq(OneItem { shape: &mut item, done: false })?;
        // A list of plain values is itself a plain value: nothing inside it to walk.
        let shape = if item == Shape::Any { Shape::Any } else { Shape::List(Box::new(item)) };
        self.leaf::<V>(shape, value)
    }

    /// Maps with keys of the user's choosing (labels, annotations) are plain values.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let value = visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<((), ())>()))?;
        self.leaf::<V>(Shape::Any, value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut shapes: Vec<(&'static str, Shape)> = fields.iter().map(|f| (*f, Shape::Any)).collect();
        let value = visitor.visit_map(EveryField { shapes: &mut shapes, next: 0 })?;
        self.leaf::<V>(Shape::Object(Object { type_name: name, fields: shapes }), value)
    }
}

/// A sequence of one item, whose shape is recorded.
struct OneItem<'a> {
    shape: &'a mut Shape,
    done: bool,
}

impl<'de> SeqAccess<'de> for OneItem<'_> {
    type Error = de::value::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        seed.deserialize(Recorder { shape: self.shape }).map(Some)
    }
}

/// A struct's every field, in order, each value's shape recorded.
struct EveryField<'a> {
    shapes: &'a mut Vec<(&'static str, Shape)>,
    next: usize,
}

impl<'de> MapAccess<'de> for EveryField<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.shapes.get(self.next) {
            Some((field, _)) => seed.deserialize((*field).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let index = self.next;
        self.next += 1;
        seed.deserialize(Recorder { shape: &mut self.shapes[index].1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(shape: &'a Shape, path: &[&str]) -> &'a Shape {
        path.iter().fold(shape, |shape, key| match shape {
            Shape::Object(object) => match object.field(key) {
                FieldKind::Honoured(shape) => shape,
                other => panic!("{key}: {other:?}"),
            },
            Shape::List(item) if *key == "[]" => item,
            other => panic!("{key} in {other:?}"),
        })
    }

    fn field_names(shape: &Shape) -> Vec<&'static str> {
        match shape {
            Shape::Object(object) => object.fields.iter().map(|(name, _)| *name).collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn the_job_shape_is_the_serde_types_camel_case_names() {
        let job = job_shape();
        assert_eq!(field_names(job), ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(
            field_names(at(job, &["metadata"])),
            ["name", "generateName", "namespace", "labels", "annotations"]
        );
        assert_eq!(
            field_names(at(job, &["spec", "template", "spec", "containers", "[]"])),
            ["name", "image", "command", "args", "env", "envFrom", "workingDir", "restartPolicy"]
        );
        assert_eq!(
            field_names(at(job, &["spec", "podFailurePolicy", "rules", "[]", "onPodConditions", "[]"])),
            ["type", "status"]
        );
    }

    #[test]
    fn scalars_that_yaml_confuses_are_typed() {
        let job = job_shape();
        assert_eq!(at(job, &["spec", "suspend"]), &Shape::Boolean);
        assert_eq!(at(job, &["spec", "parallelism"]), &Shape::Integer);
        assert_eq!(at(job, &["spec", "template", "spec", "terminationGracePeriodSeconds"]), &Shape::Integer);
        assert_eq!(
            at(job, &["spec", "podFailurePolicy", "rules", "[]", "onExitCodes", "values"]),
            &Shape::List(Box::new(Shape::Integer))
        );
        // Strings, lists of strings and maps of strings are taken as they are.
        assert_eq!(at(job, &["spec", "completionMode"]), &Shape::Any);
        assert_eq!(at(job, &["spec", "template", "spec", "containers", "[]", "command"]), &Shape::Any);
        assert_eq!(at(job, &["metadata", "labels"]), &Shape::Any);
    }

    #[test]
    fn every_container_and_init_container_is_honoured() {
        let spec = at(job_shape(), &["spec", "template", "spec"]);
        assert!(matches!(at(spec, &["containers"]), Shape::List(_)));
        assert!(matches!(at(spec, &["initContainers"]), Shape::List(_)));
    }

    #[test]
    fn server_set_fields_are_told_apart_from_fields_kjob_does_not_honour() {
        let Shape::Object(job) = job_shape() else { panic!("a Job is an object") };
        assert_eq!(job.field("status"), FieldKind::ServerSet);
        assert!(matches!(job.field("spec"), FieldKind::Honoured(Shape::Object(_))));
        let Shape::Object(meta) = at(job_shape(), &["metadata"]) else { panic!() };
        assert_eq!(meta.field("resourceVersion"), FieldKind::ServerSet);
        assert_eq!(meta.field("finalizers"), FieldKind::NotHonoured(&K8sValue::List(&K8sValue::String)));
        let Shape::Object(spec) = at(job_shape(), &["spec"]) else { panic!() };
        // Only ObjectMeta's server fields are quiet: a spec has no `uid` nor `status` at all.
        assert_eq!(spec.field("uid"), FieldKind::Unknown);
        assert_eq!(spec.field("status"), FieldKind::Unknown);
        assert_eq!(spec.field("backofLimit"), FieldKind::Unknown);
        assert_eq!(
            spec.field("selector"),
            FieldKind::NotHonoured(&K8sValue::Object("meta.v1.LabelSelector"))
        );
    }

    /// Every object type of ours, with the path where it is first met.
    fn objects<'a>(shape: &'a Shape, path: &str, out: &mut Vec<(String, &'a Object)>) {
        match shape {
            Shape::Object(object) => {
                out.push((path.to_string(), object));
                for (name, field) in &object.fields {
                    objects(field, &format!("{path}.{name}"), out);
                }
            }
            Shape::List(item) => objects(item, &format!("{path}[]"), out),
            Shape::Any | Shape::Boolean | Shape::Integer => {}
        }
    }

    /// Our serde types mirror Kubernetes': a field we honour under a name Kubernetes does not
    /// have would turn a cluster's manifest into an error here, or ours into one there.
    #[test]
    fn every_honoured_field_exists_in_kubernetes() {
        let mut all = Vec::new();
        objects(job_shape(), "", &mut all);
        assert!(all.len() >= 10, "{}", all.len());
        for (path, object) in all {
            let mapped = K8S_TYPE_NAMES.iter().find(|(ours, _)| *ours == object.type_name);
            let Some((_, theirs)) = mapped else {
                panic!("{path}: {} has no line in K8S_TYPE_NAMES", object.type_name)
            };
            let Some(theirs) = theirs else { continue };
            assert!(k8s_fields(theirs).is_some(), "{theirs} is not in k8s_fields.rs");
            for (name, _) in &object.fields {
                if KJOB_EXTENSION_FIELDS.contains(&(object.type_name, *name)) {
                    assert!(k8s_field(theirs, name).is_none(), "{theirs}.{name} is Kubernetes' now");
                    continue;
                }
                assert!(k8s_field(theirs, name).is_some(), "{path}.{name}: {theirs} has no such field");
            }
        }
    }

    #[test]
    fn the_generated_table_is_sorted_for_binary_search() {
        let types = crate::spec::k8s_fields::K8S_TYPES;
        assert!(types.windows(2).all(|w| w[0].0 < w[1].0));
        for (name, fields) in types {
            assert!(fields.windows(2).all(|w| w[0].0 < w[1].0), "{name}");
            for (field, value) in *fields {
                if let K8sValue::Object(target) = value {
                    assert!(k8s_fields(target).is_some(), "{name}.{field}: {target} missing");
                }
            }
        }
        assert_eq!(k8s_field("core.v1.Container", "imagePullPolicy"), Some(&K8sValue::String));
        assert_eq!(k8s_field("batch.v1.JobSpec", "backofLimit"), None);
    }

    #[test]
    fn did_you_mean_names_the_one_close_field() {
        let spec = ["parallelism", "completions", "backoffLimit", "backoffLimitPerIndex", "suspend"];
        assert_eq!(did_you_mean("backofLimit", &spec), Some("backoffLimit"));
        assert_eq!(did_you_mean("BackoffLimit", &spec), Some("backoffLimit"));
        assert_eq!(did_you_mean("paralelism", &spec), Some("parallelism"));
        assert_eq!(did_you_mean("completoins", &spec), Some("completions"));
        assert_eq!(did_you_mean("suspnd", &spec), Some("suspend"));
        assert_eq!(did_you_mean("colour", &spec), None);
        assert_eq!(did_you_mean("backoffLimitPerIndexx", &spec), Some("backoffLimitPerIndex"));
        // Two names equally close: no guess.
        assert_eq!(did_you_mean("ab", &["ax", "ay"]), None);
        assert_eq!(did_you_mean("ab", &["ax", "abc", "xyz"]), None);
        assert_eq!(did_you_mean("abcd", &["abcx", "wxyz"]), Some("abcx"));
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
