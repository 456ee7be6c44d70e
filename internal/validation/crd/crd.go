package crd

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	schemacel "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdFiles holds the upstream CRDs, each behind a provenance header.
//
//go:embed *.yaml
var crdFiles embed.FS

// Validator validates cluster-scoped policy objects against their CRDs.
// Safe for concurrent use; build once (NewValidator compiles all CEL
// programs).
type Validator struct {
	versions map[typeKey]*versionValidator // read-only after NewValidator
}

type typeKey struct{ apiVersion, kind string }

// versionValidator is everything compiled for one served version of one CRD.
type versionValidator struct {
	kind       string
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *schemacel.Validator // nil when the version has no CEL rules
	status     bool                 // the version has a status subresource
}

// NewValidator parses the embedded CRDs and compiles, for every served
// version, the structural schema, the OpenAPI schema validator and the CEL
// programs.
func NewValidator() (*Validator, error) {
	names, err := fs.Glob(crdFiles, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("listing embedded CRDs: %w", err)
	}
	v := &Validator{versions: map[typeKey]*versionValidator{}}
	for _, name := range names {
		crd, err := loadCRD(name)
		if err != nil {
			return nil, err
		}
		if crd.Spec.Scope != apiextv1.ClusterScoped {
			return nil, fmt.Errorf("CRD %s: scope %q, want Cluster", crd.Name, crd.Spec.Scope)
		}
		for i := range crd.Spec.Versions {
			ver := &crd.Spec.Versions[i]
			if !ver.Served {
				continue
			}
			vv, err := compileVersion(crd.Spec.Names.Kind, ver)
			if err != nil {
				return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, ver.Name, err)
			}
			key := typeKey{crd.Spec.Group + "/" + ver.Name, crd.Spec.Names.Kind}
			if _, dup := v.versions[key]; dup {
				return nil, fmt.Errorf("CRD %s: %s %s defined twice", crd.Name, key.apiVersion, key.kind)
			}
			v.versions[key] = vv
		}
	}
	return v, nil
}

func loadCRD(name string) (*apiextv1.CustomResourceDefinition, error) {
	data, err := crdFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading embedded CRD %s: %w", name, err)
	}
	crd := &apiextv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		return nil, fmt.Errorf("decoding embedded CRD %s: %w", name, err)
	}
	return crd, nil
}

// compileVersion mirrors what the apiextensions-apiserver builds for a
// served version (customresource_handler.go: structural schema with pruned
// defaults, schema validator, CEL validator).
func compileVersion(kind string, ver *apiextv1.CustomResourceDefinitionVersion) (*versionValidator, error) {
	if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("no openAPIV3Schema")
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("converting schema to internal version: %w", err)
	}
	ss, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("building structural schema: %w", err)
	}
	if err := structuraldefaulting.PruneDefaults(ss); err != nil {
		return nil, fmt.Errorf("pruning defaults: %w", err)
	}
	sv, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, fmt.Errorf("building schema validator: %w", err)
	}
	return &versionValidator{
		kind:       kind,
		structural: ss,
		schema:     sv,
		cel:        schemacel.NewValidator(ss, true, celconfig.PerCallLimit),
		status:     ver.Subresources != nil && ver.Subresources.Status != nil,
	}, nil
}

// Known reports whether apiVersion/kind is one the validator knows:
// policy.networking.k8s.io/v1beta1 and v1alpha2 ClusterNetworkPolicy,
// policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy and
// BaselineAdminNetworkPolicy.
func (v *Validator) Known(apiVersion, kind string) bool {
	_, ok := v.versions[typeKey{apiVersion, kind}]
	return ok
}

// Validate applies structural defaulting (e.g. a v1alpha1 port protocol
// defaults to TCP), prunes unknown fields and reports each as an error
// ("unknown field"), drops status (as create does for kinds with a status
// subresource, which all of these have), checks the object metadata as the
// API server does for a cluster-scoped custom resource (name required, a DNS
// subdomain; namespace forbidden), validates the OpenAPI schema, list-type
// invariants and the CEL rules, and returns the defaulted object as JSON
// ready to decode into the typed Go struct.
//
// obj is the decoded JSON object with int64 integers (see DecodeYAML,
// DecodeJSON); it is not modified. Error paths are relative to the object,
// like spec.egress[0].to[0].networks[0]. As in the API server, CEL rules are
// not evaluated when another check reports a missing required field, a
// wrong type, an unsupported enum value or a too long/too many value; an
// error says so instead. defaulted is returned even when errs is not empty
// (it is nil only for an unknown apiVersion/kind or an unusable obj).
func (v *Validator) Validate(ctx context.Context, obj map[string]any) (defaulted []byte, errs field.ErrorList) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	vv, ok := v.versions[typeKey{apiVersion, kind}]
	if !ok {
		return nil, field.ErrorList{v.unknownType(apiVersion, kind)}
	}
	cp, err := deepCopyJSON(obj, nil)
	if err != nil {
		return nil, field.ErrorList{err}
	}
	u := cp.(map[string]any)

	// Order as in the API server's decoder: default, then prune.
	structuraldefaulting.Default(u, vv.structural)
	unknown, metaErrs := prune(u, vv.structural)
	for _, p := range unknown {
		errs = append(errs, field.Forbidden(parsePath(p), "unknown field"))
	}
	if len(metaErrs) > 0 {
		// The API server fails to decode such an object: nothing more
		// to check.
		return marshal(u, append(errs, metaErrs...))
	}
	if vv.status {
		// PrepareForCreate: with a status subresource, create ignores status.
		delete(u, "status")
	}

	// customResourceStrategy.Validate.
	valErrs := validateMetadata(u, kind)
	valErrs = append(valErrs, apiservervalidation.ValidateCustomResource(nil, u, vv.schema)...)
	valErrs = append(valErrs, schemaobjectmeta.Validate(ctx, nil, u, vv.structural, false)...)
	valErrs = append(valErrs, structurallisttype.ValidateListSetsAndMaps(nil, vv.structural, u)...)
	errs = append(errs, valErrs...)
	if vv.cel != nil {
		if e := blockingErr(valErrs); e != nil {
			errs = append(errs, e)
		} else {
			celErrs, _ := vv.cel.Validate(ctx, nil, vv.structural, u, nil, celconfig.RuntimeCELCostBudget)
			for _, e := range celErrs {
				if e.Field == rootField && kind == "BaselineAdminNetworkPolicy" {
					// The only root-level rule of the embedded CRDs
					// (pinned by a test): self.metadata.name == 'default'.
					e.Field, e.BadValue = "metadata.name", nestedString(u, "metadata", "name")
				}
				errs = append(errs, e)
			}
		}
	}

	return marshal(u, errs)
}

func marshal(u map[string]any, errs field.ErrorList) ([]byte, field.ErrorList) {
	out, err := json.Marshal(u)
	if err != nil {
		return nil, append(errs, field.InternalError(nil, fmt.Errorf("encoding the defaulted object: %w", err)))
	}
	return out, errs
}

func (v *Validator) unknownType(apiVersion, kind string) *field.Error {
	var kinds, versions []string
	for k := range v.versions {
		if k.kind == kind {
			versions = append(versions, k.apiVersion)
		}
		kinds = append(kinds, k.kind)
	}
	if len(versions) > 0 {
		sort.Strings(versions)
		return field.NotSupported(field.NewPath("apiVersion"), apiVersion, versions)
	}
	sort.Strings(kinds)
	return field.NotSupported(field.NewPath("kind"), kind, compact(kinds))
}

func compact(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// prune mirrors unstructuredSchemaCoercer.apply of the apiextensions
// apiserver with unknown-field tracking on: it drops unknown fields
// (returning their paths) and nulls the schema does not allow, and
// normalises metadata. Metadata that does not decode as ObjectMeta is an
// error.
func prune(u map[string]any, ss *structuralschema.Structural) (unknown []string, errs field.ErrorList) {
	meta, foundMeta, metaUnknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		errs = append(errs, field.Invalid(field.NewPath("metadata"), u["metadata"], err.Error()))
	}
	unknown = append(unknown, metaUnknown...)
	apiVersion, kind := u["apiVersion"], u["kind"]
	unknown = append(unknown, structuralpruning.PruneWithOptions(u, ss, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u, ss)
	if ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, u, ss, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true}); ferr != nil {
		errs = append(errs, ferr)
	} else {
		unknown = append(unknown, paths...)
	}
	u["apiVersion"], u["kind"] = apiVersion, kind
	if foundMeta && meta != nil {
		if err := schemaobjectmeta.SetObjectMeta(u, meta); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("metadata"), u["metadata"], err.Error()))
		}
	}
	return unknown, errs
}

// validateMetadata is the API server's generic ObjectMeta validation for a
// cluster-scoped custom resource, except that a namespace is an error here
// (the API server silently drops it) and generateName does not replace name.
func validateMetadata(u map[string]any, kind string) field.ErrorList {
	mp := field.NewPath("metadata")
	meta, _, _, err := schemaobjectmeta.GetObjectMetaWithOptions(u, schemaobjectmeta.ObjectMetaOptions{})
	if err != nil {
		return field.ErrorList{field.Invalid(mp, u["metadata"], err.Error())}
	}
	if meta == nil {
		return field.ErrorList{field.Required(mp.Child("name"), "name is required")}
	}
	var errs field.ErrorList
	if meta.Name == "" {
		errs = append(errs, field.Required(mp.Child("name"), "name is required"))
	}
	if meta.Namespace != "" {
		errs = append(errs, field.Forbidden(mp.Child("namespace"), kind+" is cluster-scoped"))
		meta.Namespace = ""
	}
	for _, e := range apimachineryvalidation.ValidateObjectMeta(meta, false, apimachineryvalidation.NameIsDNSSubdomain, mp) {
		if e.Type == field.ErrorTypeRequired && e.Field == "metadata.name" {
			continue // reported above
		}
		errs = append(errs, e)
	}
	return errs
}

// rootField is the Field of an error at the object root (a nil path).
var rootField = (*field.Path)(nil).String()

// blockingErr is customResourceStrategy's rule for skipping CEL (the rules
// assume the schema holds): a note on the first error of a blocking type,
// or nil. The API server puts the note at the root; here it names the
// first blocking field.
func blockingErr(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return &field.Error{
				Type:     field.ErrorTypeInvalid,
				Field:    err.Field,
				BadValue: field.OmitValueType{},
				Detail:   "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
			}
		}
	}
	return nil
}

func nestedString(m map[string]any, keys ...string) string {
	var x any = m
	for _, k := range keys {
		mm, ok := x.(map[string]any)
		if !ok {
			return ""
		}
		x = mm[k]
	}
	s, _ := x.(string)
	return s
}

// deepCopyJSON copies a JSON value, turning Go integer types into int64
// (what the API server's decoder produces) and rejecting non-JSON types.
func deepCopyJSON(x any, p *field.Path) (any, *field.Error) {
	switch x := x.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			c, err := deepCopyJSON(v, p.Child(k))
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		s := make([]any, len(x))
		for i, v := range x {
			c, err := deepCopyJSON(v, p.Index(i))
			if err != nil {
				return nil, err
			}
			s[i] = c
		}
		return s, nil
	case string, bool, int64, float64, nil:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	default:
		return nil, field.InternalError(p, fmt.Errorf("unsupported Go type %T in the decoded object (decode with DecodeYAML or DecodeJSON)", x))
	}
}

// parsePath turns an unknown-field path of the pruner ("spec.egress[0].foo")
// into a field.Path.
func parsePath(s string) *field.Path {
	var p *field.Path
	for _, seg := range strings.Split(s, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if p == nil {
			p = field.NewPath(name)
		} else {
			p = p.Child(name)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil {
				return field.NewPath(s) // not a path we understand: keep it whole
			}
			p = p.Index(i)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return p
}
