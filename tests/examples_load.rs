use std::path::Path;
fn try_doc(nodes: &str, extra_inputs: &str) {
    let doc = format!(r#"{{"format":"eqopt-graph","version":1,"inputs":[{{"name":"x","shape":[2,3],"dtype":"f32"}}{extra_inputs}],"outputs":["y"],"nodes":[{nodes}]}}"#);
    let r = std::panic::catch_unwind(|| eqopt::graph::json::parse(&doc, Path::new("t.json")).map(|g| format!("{:?}", g.nodes.iter().map(|n| (&n.name, &n.op, &n.ty)).collect::<Vec<_>>())));
    match r { Ok(Ok(s)) => println!("OK {s}"), Ok(Err(e)) => println!("ERR {e}"), Err(_) => println!("PANIC") }
}
#[test]
fn probe() {
    try_doc(r#"{"name":"y","op":"FusedElementwise","inputs":[],"attrs":{"expr":"add(1, 2)"}}"#, "");
    try_doc(r#"{"name":"y","op":"Slice","inputs":["x"],"attrs":{"starts":[0,1],"ends":[2,3],"axes":[1,1]}}"#, "");
    try_doc(r#"{"name":"y","op":"ReduceSum","inputs":["x"],"attrs":{"axes":[]}}"#, "");
    try_doc(r#"{"name":"y","op":"Gelu","inputs":["x"],"attrs":{"approximate":"tanh"}}"#, "");
    try_doc(r#"{"name":"y","op":"Conv","inputs":["x","x"],"attrs":{"auto_pad":"SAME_UPPER"}}"#, "");
    try_doc(r#"{"name":"y","op":"Max","inputs":["x","x","x"]}"#, "");
    try_doc(r#"{"name":"s","op":"Split","inputs":["x"],"outputs":["y","z"],"attrs":{"axis":1,"split":[1,2]}}"#, "");
    try_doc(r#"{"name":"x","op":"Split","inputs":["x"],"outputs":["y","z"],"attrs":{"axis":1,"split":[1,2]}}"#, "");
    try_doc(r#"{"name":"y","op":"Relu","inputs":["x"],"outputs":["q"]}"#, "");
    try_doc(r#"{"name":"y","op":"Reshape","inputs":["x"],"attrs":{"shape":[0,0,-1]}}"#, "");
    try_doc(r#"{"name":"y","op":"Flatten","inputs":["x"],"attrs":{"axis":-2}}"#, "");
    try_doc(r#"{"name":"y","op":"Cast","inputs":["x"],"attrs":{"to":"i32"}}"#, "");
    try_doc(r#"{"name":"y","op":"Add","inputs":["x","i"]}"#, r#",{"name":"i","shape":[3],"dtype":"i32"}"#);
    try_doc(r#"{"name":"y","op":"Relu","inputs":["x"]},{"name":"y2","op":"Relu","inputs":["nope"]},{"name":"z","op":"Bogus","inputs":["x"]}"#, "");
    try_doc(r#"{"name":"y","op":"MatMul","inputs":["x","w"]}"#, r#",{"name":"w","shape":[3,4000000000000000000],"dtype":"f32"}"#);
    try_doc(r#"{"name":"y","op":"Transpose","inputs":["x"],"attrs":{"perm":[1,0]}},{"name":"y","op":"Relu","inputs":["x"]}"#, "");
    try_doc(r#"{"name":"y","op":"Relu","inputs":["z"]},{"name":"z","op":"Relu","inputs":["y"]}"#, "");
    try_doc(r#"{"name":"y","op":"MaxPool","inputs":["x"],"attrs":{"kernel_shape":[2,2]}}"#, "");
    try_doc(r#"{"name":"y","op":"Softmax","inputs":["x"],"attrs":{"axis":1.0}}"#, "");
}
