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
//! (written by the API server; dropped quietly) or [`FieldKind::NotHonoured`] (reported). The
//! strict decoding to come (a field unknown to batch/v1 is an error, a known one kjob cannot
//! honour a warning) splits the last kind in two with a table of batch/v1's own fields.

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
    /// Not read here: reported to the user and dropped.
    NotHonoured,
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
            FieldKind::ServerSet
        } else {
            FieldKind::NotHonoured
        }
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
        assert_eq!(meta.field("finalizers"), FieldKind::NotHonoured);
        let Shape::Object(spec) = at(job_shape(), &["spec"]) else { panic!() };
        // Only ObjectMeta's server fields are quiet: a spec's `uid` is reported.
        assert_eq!(spec.field("uid"), FieldKind::NotHonoured);
        assert_eq!(spec.field("status"), FieldKind::NotHonoured);
    }
}
