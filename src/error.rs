//! The one error type of the eqopt library.
//!
//! Every variant names where the problem is (file, line, node, rule) and what was
//! expected versus found, so that a message alone lets a user fix the input.

use std::path::PathBuf;

/// Errors from loading, checking, optimizing and writing graphs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON document is not well-formed or does not match the expected structure.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json reported.
        message: String,
    },
    /// A field of a model file (graph.json, or an ONNX model's graph) has the wrong value.
    #[error("{path}: {location}: expected {expected}, found {found}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in the document, e.g. `nodes[3] "fc1"`, `inputs[0].dtype` or `graph.input[0] "x" element type`.
        location: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// An error about the contents of a graph file, with the file named.
    #[error("{path}: {source}")]
    InGraph {
        /// The graph file.
        path: PathBuf,
        /// The problem.
        source: Box<Error>,
    },
    /// A node's op name is not in the op set.
    #[error("node \"{node}\": unknown op \"{op}\" (known ops: {known})")]
    UnknownOp {
        /// Node name.
        node: String,
        /// The op name found.
        op: String,
        /// The op names eqopt knows.
        known: String,
    },
    /// A node has the wrong number of inputs for its op.
    #[error("node \"{node}\" ({op}): expected {expected} inputs, found {found}")]
    Arity {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// Allowed input count, e.g. `2` or `2 to 3`.
        expected: String,
        /// Input count found.
        found: usize,
    },
    /// A node reads a tensor that no input, constant or node defines.
    #[error("node \"{node}\": input \"{input}\" is not a graph input, constant or node output")]
    DanglingInput {
        /// Node name.
        node: String,
        /// The undefined tensor name.
        input: String,
    },
    /// A graph output names a tensor that is not defined.
    #[error("graph output \"{output}\" is not a graph input, constant or node output")]
    UnknownOutput {
        /// The undefined tensor name.
        output: String,
    },
    /// Two definitions share a name.
    #[error("duplicate name \"{name}\": defined as {first} and again as {second}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The first definition (e.g. `input`, `constant`, `node`).
        first: String,
        /// The second definition.
        second: String,
    },
    /// The nodes form a cycle.
    #[error("the graph has a cycle through nodes {}", .nodes.join(" -> "))]
    Cycle {
        /// Nodes on the cycle, in order.
        nodes: Vec<String>,
    },
    /// An attribute is missing or has a bad value.
    #[error("node \"{node}\" ({op}): attribute \"{attr}\": expected {expected}, found {found}")]
    BadAttr {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// Attribute name.
        attr: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Input shapes or dtypes do not fit the op.
    #[error("node \"{node}\" ({op}): expected {expected}, found {found}")]
    TypeMismatch {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What the op requires.
        expected: String,
        /// The input types found.
        found: String,
    },
    /// A shape's element count or byte size overflows.
    #[error("{what}: shape {shape} overflows the addressable size")]
    DimOverflow {
        /// The tensor or node.
        what: String,
        /// The shape, as written.
        shape: String,
    },
    /// A constant refers to a weights file or key that is not there, or its data disagree.
    #[error("{file}: constant \"{constant}\": {problem}")]
    Weights {
        /// Constant name.
        constant: String,
        /// The weights file (or the graph file, when it names none).
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A safetensors file could not be parsed or written.
    #[error("{path}: safetensors: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: safetensors::SafeTensorError,
    },
    /// A rule file does not parse.
    #[error("{file}:{line}:{column}: expected {expected}, found {found}")]
    RuleSyntax {
        /// Rule file (or `<embedded>/name.rules`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        expected: String,
        /// What it found.
        found: String,
    },
    /// A rule parses but is not valid (unknown predicate, unbound variable, ...).
    #[error("{file}:{line}: rule {rule}: {problem}")]
    RuleInvalid {
        /// Rule file.
        file: String,
        /// 1-based line of the rule header.
        line: usize,
        /// Rule name.
        rule: String,
        /// What is wrong.
        problem: String,
    },
    /// A rule equated two e-classes with different tensor types: the rule is unsound.
    #[error("rule {rule} is unsound: the matched class has type {lhs} but the rewritten term has {rhs} ({detail})")]
    UnsoundRule {
        /// Rule name.
        rule: String,
        /// Type of the matched class.
        lhs: String,
        /// Type of the rewritten term (`type f32[2, 3]`, or `no type: <why>`).
        rhs: String,
        /// The rewritten term, or why it could not be typed.
        detail: String,
    },
    /// `eqopt rules check` found rules that fail or cannot be checked.
    #[error("rules check: {} failed{}, {} unchecked{}", .failed.len(), listed(.failed), .unchecked.len(), listed(.unchecked))]
    RulesCheck {
        /// Rules with a counterexample.
        failed: Vec<String>,
        /// Rules no instance could check.
        unchecked: Vec<String>,
    },
    /// A hardware target name or file is not valid.
    #[error("target {target}: {problem}")]
    Target {
        /// Target name or path.
        target: String,
        /// What is wrong.
        problem: String,
    },
    /// A command-line value is not valid.
    #[error("{option}: expected {expected}, found {found}")]
    Usage {
        /// The option.
        option: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The extractor failed.
    #[error("extraction: {0}")]
    Extract(#[from] eqopt_extract::ExtractError),
    /// A node the CPU backend cannot lower (an op or dtype it does not run).
    #[error("node \"{node}\" ({op}): the cpu backend {problem}; run it with the reference interpreter (`eqopt run --reference`)")]
    Unsupported {
        /// The node.
        node: String,
        /// Its op.
        op: String,
        /// What is missing.
        problem: String,
    },
    /// The CPU backend failed while running (a bad input, or a kernel refusing
    /// arguments: a lowering bug).
    #[error("cpu backend: {0}")]
    Exec(#[from] eqopt_cpu::exec::ExecError),
    /// A CPU kernel refused its arguments outside a program (a calibration probe).
    #[error("cpu kernel: {0}")]
    Kernel(#[from] eqopt_cpu::KernelError),
    /// The lowered program broke one of its contracts (a lowering bug).
    #[error("lowered program: {0}")]
    Program(#[from] eqopt_kir::ProgramError),
    /// The memory planner refused the program's buffers (a lowering bug).
    #[error("memory plan: {0}")]
    Plan(#[from] eqopt_kir::plan::PlanError),
    /// A device backend failed while running a program.
    #[error("{backend} device: {problem}")]
    Device {
        /// The backend (`ptx`).
        backend: &'static str,
        /// What failed, as the device reported it.
        problem: String,
    },
    /// An experiment file or results directory that cannot be used.
    #[error("{}: {problem}", .file.display())]
    Experiment {
        /// The experiment file or results file.
        file: PathBuf,
        /// What is wrong, with the line or key where known.
        problem: String,
    },
    /// A platform description is unusable.
    #[error("platform {platform}: {problem}")]
    Platform {
        /// The platform's name or file.
        platform: String,
        /// What is wrong.
        problem: String,
    },
    /// No schedule satisfies the platform (no link to a device, memory).
    #[error("cannot schedule {graph}: {problem}")]
    Schedule {
        /// The graph.
        graph: String,
        /// Why.
        problem: String,
    },
    /// The PTX backend cannot emit the program.
    #[error("ptx backend: {0}")]
    Ptx(#[from] eqopt_ptx::PtxError),
    /// The extracted term is not a valid graph (a bug caught before anything is written).
    #[error("extracted graph is invalid: {problem}")]
    BadExtraction {
        /// What is wrong.
        problem: String,
    },
    /// A tensor file (.npy, .npz, safetensors) is malformed or holds what eqopt cannot read.
    #[error("{path}: {problem}")]
    TensorFile {
        /// The file (for an .npz member, `<archive>/<member>`).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Graph inputs were neither given nor filled with random values.
    #[error(
        "no value for graph input(s) {}: give them with --input NAME=FILE.npy or --inputs FILE.safetensors, or fill them with --random-inputs SEED",
        .inputs.join(", ")
    )]
    MissingInputs {
        /// The missing inputs, each as `name (type)`.
        inputs: Vec<String>,
    },
    /// The reference interpreter failed on a graph.
    #[error("{graph}: evaluation failed: {source}")]
    Eval {
        /// The graph file.
        graph: PathBuf,
        /// What went wrong (boxed: it is large).
        source: Box<crate::eval::EvalError>,
    },
    /// A file is not a decodable ONNX model.
    #[error("{path}: not a valid ONNX model ({message}); the file may be truncated or not an ONNX protobuf")]
    OnnxDecode {
        /// The model file.
        path: PathBuf,
        /// What the protobuf decoder reported.
        message: String,
    },
    /// The model imports an opset eqopt cannot read.
    #[error("{path}: opset {version} of domain \"{domain}\" is not supported (eqopt reads opsets {min} to {max} of the default domain)")]
    OnnxOpset {
        /// The model file.
        path: PathBuf,
        /// The opset domain (`""` is the default ONNX domain).
        domain: String,
        /// The version the model imports.
        version: i64,
        /// Oldest supported version.
        min: i64,
        /// Newest supported version.
        max: i64,
    },
    /// Nodes use op types the importer does not support; all of them are listed.
    #[error(
        "{path}: {} op type(s) eqopt cannot import: {}. Supported ops: {}",
        .ops.len(),
        .ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", "),
        .supported
    )]
    OnnxUnsupportedOps {
        /// The model file.
        path: PathBuf,
        /// Each unsupported op type with the nodes using it.
        ops: Vec<UnsupportedOp>,
        /// The op types the importer supports, comma-separated.
        supported: String,
    },
    /// A graph input has a dimension that is not a fixed number.
    #[error(
        "{path}: graph input \"{input}\" dim {dim} is {what}; eqopt needs static shapes: give them with --input-shape {input}={example}"
    )]
    SymbolicDim {
        /// The model file.
        path: PathBuf,
        /// The input name.
        input: String,
        /// 0-based index of the dim.
        dim: usize,
        /// `symbolic ("batch")` or `unknown`.
        what: String,
        /// The input's shape with each unknown dim as `N`, e.g. `N,3,224,224`.
        example: String,
    },
    /// An ONNX node cannot be imported as written (a non-constant shape, an unsupported mode, ...).
    #[error("node \"{node}\" ({op}): {what}: expected {expected}, found {found}")]
    OnnxNode {
        /// Node name (its first output when the node has no name).
        node: String,
        /// ONNX op type.
        op: String,
        /// The input, output or attribute concerned, e.g. `input 1 (shape)`.
        what: String,
        /// What eqopt needs.
        expected: String,
        /// What the model has.
        found: String,
    },
}

/// An op type the ONNX importer does not support, with every node that uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// `TopK`, or `com.microsoft::FusedGemm` for a non-default domain.
    pub op_type: String,
    /// Names of the nodes using it, in model order.
    pub nodes: Vec<String>,
}

impl std::fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self.nodes.iter().map(|n| format!("\"{n}\"")).collect();
        let noun = if self.nodes.len() == 1 { "node" } else { "nodes" };
        write!(f, "{} ({noun} {})", self.op_type, quoted.join(", "))
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ` (a, b)` for a non-empty list, nothing for an empty one.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

impl Error {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
