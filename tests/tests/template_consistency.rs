//! `infra/template.yaml` agrees with the code it deploys: the workflows' placeholders, the
//! workspace's function binaries, the environment each function reads, the store's tables, and
//! least-privilege IAM. cfn-lint and `sam validate` check the template on its own
//! (`scripts/checks/cfn-lint.sh`); these tests check it against the rest of the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use aftersales_service::store::{TableNames, table_definitions};
use regex::Regex;
use serde_yaml::Value;

/// An index as compared: its key schema (attribute, key type) and projected attributes.
type IndexShape = (Vec<(String, String)>, BTreeSet<String>);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value under a short-form tag (`!Ref x` is `Tagged(Ref, x)`), or the value itself.
fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    untag(value).as_mapping()?.get(key).map(untag)
}

fn text(value: &Value) -> Option<&str> {
    untag(value).as_str()
}

/// `(logical id, resource)` for every resource of `kind`.
fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let all = get(template, "Resources")
        .and_then(Value::as_mapping)
        .expect("Resources");
    all.iter()
        .filter(|(_, r)| get(r, "Type").and_then(text) == Some(kind))
        .map(|(id, r)| (text(id).expect("logical id").to_owned(), r))
        .collect()
}

/// A template function: its logical id, the cargo binary it deploys, its merged environment.
struct TemplateFunction {
    id: String,
    binary: String,
    environment: BTreeSet<String>,
}

fn template_functions(template: &Value) -> Vec<TemplateFunction> {
    let global_env: BTreeSet<String> = get(template, "Globals")
        .and_then(|g| get(g, "Function"))
        .and_then(|f| get(f, "Environment"))
        .and_then(|e| get(e, "Variables"))
        .and_then(Value::as_mapping)
        .map(|vars| vars.keys().filter_map(text).map(str::to_owned).collect())
        .unwrap_or_default();
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, resource)| {
            let metadata = get(resource, "Metadata").unwrap_or_else(|| panic!("{id}: no Metadata"));
            assert_eq!(
                get(metadata, "BuildMethod").and_then(text),
                Some("rust-cargolambda"),
                "{id}: BuildMethod"
            );
            let binary = get(metadata, "BuildProperties")
                .and_then(|p| get(p, "Binary"))
                .and_then(text)
                .unwrap_or_else(|| {
                    panic!("{id}: Metadata.BuildProperties.Binary names the cargo binary")
                })
                .to_owned();
            let properties = get(resource, "Properties").expect("Properties");
            // cargo-lambda builds in the source dir and SAM copies target/lambda/<bin>/bootstrap
            // from there: the workspace root, relative to infra/.
            assert_eq!(
                get(properties, "CodeUri")
                    .and_then(text)
                    .map(|u| u.trim_end_matches('/')),
                Some(".."),
                "{id}: CodeUri is the workspace root"
            );
            let mut environment = global_env.clone();
            if let Some(vars) = get(properties, "Environment")
                .and_then(|e| get(e, "Variables"))
                .and_then(Value::as_mapping)
            {
                environment.extend(vars.keys().filter_map(text).map(str::to_owned));
            }
            TemplateFunction {
                id,
                binary,
                environment,
            }
        })
        .collect()
}

/// A function binary of the workspace: a package under `functions/` with a binary target.
struct WorkspaceBinary {
    name: String,
    package_dir: PathBuf,
}

fn workspace_binaries() -> Vec<WorkspaceBinary> {
    let mut binaries = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest: toml::Table = fs::read_to_string(dir.join("Cargo.toml"))
            .expect("Cargo.toml")
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let package = manifest["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_owned();
        let mut names = BTreeSet::new();
        for bin in manifest
            .get("bin")
            .and_then(|b| b.as_array())
            .into_iter()
            .flatten()
        {
            names.insert(bin["name"].as_str().expect("[[bin]] name").to_owned());
        }
        let autobins = manifest["package"]
            .get("autobins")
            .and_then(|a| a.as_bool())
            != Some(false);
        if autobins && names.is_empty() && dir.join("src/main.rs").is_file() {
            names.insert(package.clone());
        }
        if autobins && let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "rs") {
                    names.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        binaries.extend(names.into_iter().map(|name| WorkspaceBinary {
            name,
            package_dir: dir.clone(),
        }));
    }
    binaries
}

/// The code of a source file without its unit tests (`#[cfg(test)] mod tests` comes last).
fn production_code(file: &Path) -> String {
    let code = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    match code.find("\n#[cfg(test)]") {
        Some(end) => code[..end].to_owned(),
        None => code,
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The execution-role statements of every IAM role and inline policy in the template.
fn iam_statements(template: &Value) -> Vec<(String, &Value)> {
    let mut statements = Vec::new();
    for (id, role) in resources(template, "AWS::IAM::Role") {
        let properties = get(role, "Properties").expect("Properties");
        for policy in get(properties, "Policies")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let document = get(policy, "PolicyDocument").expect("PolicyDocument");
            for statement in statements_of(document) {
                statements.push((id.clone(), statement));
            }
        }
        assert!(
            get(properties, "ManagedPolicyArns").is_none(),
            "{id}: managed policies grant more than the function uses; write the statements"
        );
    }
    for (id, policy) in resources(template, "AWS::IAM::Policy") {
        let document = get(
            get(policy, "Properties").expect("Properties"),
            "PolicyDocument",
        )
        .expect("PolicyDocument");
        for statement in statements_of(document) {
            statements.push((id.clone(), statement));
        }
    }
    statements
}

/// The statements of a policy document, including both branches of an `!If`.
fn statements_of(document: &Value) -> Vec<&Value> {
    fn expand<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Tagged(tagged) if tagged.tag == "If" => {
                for branch in tagged.value.as_sequence().into_iter().flatten().skip(1) {
                    expand(branch, out);
                }
            }
            Value::Tagged(tagged) if tagged.tag == "Ref" => {} // AWS::NoValue
            Value::Mapping(_) => out.push(value),
            other => panic!("unexpected statement {other:?}"),
        }
    }
    let mut out = Vec::new();
    for statement in get(document, "Statement")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        expand(statement, &mut out);
    }
    out
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value.map(untag) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items.iter().filter_map(text).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_placeholder_of_every_workflow_has_a_substitution() {
    let template = template();
    let machines = resources(&template, "AWS::Serverless::StateMachine");
    let placeholder = Regex::new(r"\$\{([^}]+)\}").unwrap();
    let mut workflows: Vec<PathBuf> = fs::read_dir(root().join("workflows"))
        .expect("workflows/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    workflows.sort();
    assert!(!workflows.is_empty(), "no workflows/*.asl.json");

    for workflow in workflows {
        let file = workflow.file_name().unwrap().to_string_lossy().into_owned();
        let (id, machine) = machines
            .iter()
            .find(|(_, m)| {
                get(m, "Properties")
                    .and_then(|p| get(p, "DefinitionUri"))
                    .and_then(text)
                    == Some(format!("../workflows/{file}").as_str())
            })
            .unwrap_or_else(|| panic!("workflows/{file} is not deployed by any state machine"));
        let substitutions: BTreeSet<String> = get(machine, "Properties")
            .and_then(|p| get(p, "DefinitionSubstitutions"))
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(text).map(str::to_owned).collect())
            .unwrap_or_default();
        let definition = fs::read_to_string(&workflow).expect("workflow");
        let used: BTreeSet<String> = placeholder
            .captures_iter(&definition)
            .map(|c| c[1].to_owned())
            .collect();
        let missing: Vec<_> = used.difference(&substitutions).collect();
        assert!(
            missing.is_empty(),
            "{id} ({file}): no substitution for {missing:?}"
        );
        let unused: Vec<_> = substitutions.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "{id} ({file}): substitutions no placeholder uses: {unused:?}"
        );
    }
}

#[test]
fn the_workflow_role_invokes_exactly_the_substituted_functions() {
    let template = template();
    for (id, machine) in resources(&template, "AWS::Serverless::StateMachine") {
        let properties = get(machine, "Properties").expect("Properties");
        let substituted: BTreeSet<String> = get(properties, "DefinitionSubstitutions")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| text(v))
            .filter_map(|v| v.strip_suffix(".Arn"))
            .map(str::to_owned)
            .collect();
        let role = get(properties, "Role")
            .and_then(text)
            .and_then(|r| r.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{id}: Role is !GetAtt <role>.Arn"));
        let invokable: BTreeSet<String> = iam_statements(&template)
            .into_iter()
            .filter(|(owner, _)| owner == role)
            .filter(|(_, s)| {
                strings(get(s, "Action"))
                    .iter()
                    .any(|a| a == "lambda:InvokeFunction")
            })
            .flat_map(|(_, s)| strings(get(s, "Resource")))
            .filter_map(|r| r.strip_suffix(".Arn").map(str::to_owned))
            .collect();
        assert_eq!(
            invokable, substituted,
            "{id}: {role} may invoke exactly the workflow's functions"
        );
    }
}

fn binaries_in_template_and_workspace() -> (BTreeMap<String, String>, BTreeSet<String>) {
    let in_template = template_functions(&template())
        .into_iter()
        .map(|f| (f.binary, f.id))
        .collect();
    let in_workspace = workspace_binaries().into_iter().map(|b| b.name).collect();
    (in_template, in_workspace)
}

#[test]
fn the_template_deploys_every_function_binary_of_the_workspace() {
    let (in_template, in_workspace) = binaries_in_template_and_workspace();
    let undeployed: Vec<_> = in_workspace
        .iter()
        .filter(|b| !in_template.contains_key(*b))
        .collect();
    assert!(
        undeployed.is_empty(),
        "function binaries the template does not deploy: {undeployed:?}"
    );
}

#[test]
fn every_template_function_is_a_binary_of_the_workspace() {
    let (in_template, in_workspace) = binaries_in_template_and_workspace();
    let unbuilt: Vec<_> = in_template
        .iter()
        .filter(|(binary, _)| !in_workspace.contains(*binary))
        .map(|(binary, id)| format!("{id} (Binary: {binary})"))
        .collect();
    assert!(
        unbuilt.is_empty(),
        "template functions without a workspace binary: {unbuilt:?}"
    );
}

/// The environment variables a function's code requires, found in its sources: the binary's
/// package and the service handler module of the same name (`handlers/accept.rs`,
/// `handlers/steps/execute_refund.rs`). Recognised: `required_env(X)` and `env::var(X)` with a
/// literal or a named `&str` constant; calls of the free functions in `config.rs` (their own
/// `required_env` calls); `TableNames::from_env()`; and `SecretSource::from_env()`, for which
/// the cloud sets `SecretSource::SECRET_ID_ENV` (the other source is for local runs).
fn required_environment(binary: &WorkspaceBinary) -> BTreeSet<String> {
    let service = root().join("functions/service/src");
    let module = binary.name.replace('-', "_");
    let mut sources = rust_files(&binary.package_dir.join("src"));
    sources.extend(
        rust_files(&service.join("handlers"))
            .into_iter()
            .filter(|p| p.file_stem().is_some_and(|s| s == module.as_str())),
    );

    // Every `const NAME: &str = "VALUE"` of the service crate and the binary's package.
    let constant =
        Regex::new(r#"const\s+([A-Z][A-Z0-9_]*)\s*:\s*&\s*(?:'static\s+)?str\s*=\s*"([^"]*)""#)
            .unwrap();
    let mut constants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&service)
        .into_iter()
        .chain(rust_files(&binary.package_dir.join("src")))
    {
        let code = production_code(&file);
        for c in constant.captures_iter(&code) {
            constants
                .entry(c[1].to_owned())
                .or_default()
                .insert(c[2].to_owned());
        }
    }
    let resolve = |argument: &str| -> Vec<String> {
        let argument = argument.trim();
        if let Some(literal) = argument.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            return vec![literal.to_owned()];
        }
        let name = argument.rsplit("::").next().unwrap_or(argument);
        let values = constants.get(name).cloned().unwrap_or_default();
        assert!(
            values.len() == 1,
            "{}: cannot resolve the environment variable named by `{argument}` ({values:?})",
            binary.name
        );
        values.into_iter().collect()
    };
    let reads = Regex::new(r"(?:required_env|env::var)\(\s*([^,)]+?)\s*\)").unwrap();
    let required_in = |code: &str| -> BTreeSet<String> {
        reads
            .captures_iter(code)
            .filter(|c| !c[1].trim().starts_with("name"))
            .flat_map(|c| resolve(&c[1]))
            .collect()
    };

    // The free functions of config.rs and what each requires.
    let config = production_code(&service.join("config.rs"));
    let helper = Regex::new(r"(?m)^pub fn ([a-z_]+)\(").unwrap();
    let starts: Vec<(usize, String)> = helper
        .captures_iter(&config)
        .map(|c| (c.get(0).unwrap().start(), c[1].to_owned()))
        .collect();
    let mut helpers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, (start, name)) in starts.iter().enumerate() {
        if name == "required_env" || name == "optional_env" {
            continue;
        }
        let end = starts.get(i + 1).map_or(config.len(), |(s, _)| *s);
        helpers.insert(name.clone(), required_in(&config[*start..end]));
    }

    // The step binaries read their variables through a typed configuration in
    // `handlers/steps/config.rs` (`RulesConfig::from_env()`): each one named by the binary's
    // code brings its `impl` block along.
    let step_config = production_code(&service.join("handlers/steps/config.rs"));
    let config_use = Regex::new(r"\b([A-Z][A-Za-z]*Config)::from_env\(").unwrap();
    let mut codes: Vec<String> = sources.iter().map(|file| production_code(file)).collect();
    let named: BTreeSet<String> = codes
        .iter()
        .flat_map(|code| config_use.captures_iter(code).map(|c| c[1].to_owned()))
        .collect();
    for name in named {
        let start = step_config
            .find(&format!("\nimpl {name} {{"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: uses {name} but handlers/steps/config.rs has no `impl {name}`",
                    binary.name
                )
            });
        let end = step_config[start..]
            .find("\n}\n")
            .map_or(step_config.len(), |e| start + e);
        codes.push(step_config[start..end].to_owned());
    }

    let mut required = BTreeSet::new();
    for code in &codes {
        required.extend(required_in(code));
        for (name, vars) in &helpers {
            if code.contains(&format!("config::{name}(")) {
                required.extend(vars.iter().cloned());
            }
        }
        if code.contains("TableNames::from_env(") {
            required.extend(resolve("TICKETS_ENV"));
            required.extend(resolve("LEDGER_ENV"));
        }
        if code.contains("SecretSource::from_env(") {
            required.extend(resolve("SECRET_ID_ENV"));
        }
    }
    required
}

#[test]
fn the_template_sets_every_environment_variable_each_function_requires() {
    let template = template();
    let functions = template_functions(&template);
    let binaries = workspace_binaries();
    for function in &functions {
        let Some(binary) = binaries.iter().find(|b| b.name == function.binary) else {
            continue; // reported by every_template_function_is_a_binary_of_the_workspace
        };
        let required = required_environment(binary);
        assert!(
            !required.is_empty(),
            "{}: found no environment variable its code requires; every function needs the table names at least, so the scan missed its configuration",
            function.id
        );
        let missing: Vec<_> = required.difference(&function.environment).collect();
        assert!(
            missing.is_empty(),
            "{} ({}): the template does not set {missing:?}",
            function.id,
            binary.name
        );
    }
}

#[test]
fn the_environment_scan_finds_what_accept_and_respond_require() {
    // Guards the scan itself against the handlers as they are written today.
    let accept = required_environment(&WorkspaceBinary {
        name: "accept".into(),
        package_dir: root().join("functions/accept"),
    });
    for var in [
        "TICKETS_TABLE",
        "LEDGER_TABLE",
        "STATE_MACHINE_ARN",
        "WEBHOOK_SECRET_ID",
    ] {
        assert!(
            accept.contains(var),
            "accept requires {var}: scan found {accept:?}"
        );
    }
    let respond = required_environment(&WorkspaceBinary {
        name: "respond".into(),
        package_dir: root().join("functions/respond"),
    });
    assert!(
        respond.contains("WEBHOOK_SECRET_ID") && !respond.contains("STATE_MACHINE_ARN"),
        "{respond:?}"
    );
    let step = |name: &str| {
        required_environment(&WorkspaceBinary {
            name: name.into(),
            package_dir: root().join("functions").join(name),
        })
    };
    let diagnose = step("diagnose");
    assert!(
        diagnose.contains("TICKETS_TABLE") && diagnose.contains("LEDGER_TABLE"),
        "{diagnose:?}"
    );
    let refund = step("execute-refund");
    assert!(
        refund.contains("PAYMENT_PROVIDER") && refund.contains("WEBHOOK_SECRET_ID"),
        "{refund:?}"
    );
    assert!(
        !refund.contains("STRIPE_API_KEY"),
        "the Stripe key has a Secrets Manager alternative: {refund:?}"
    );
    let survey = step("survey");
    for var in [
        "QUALITY_QUEUE_URL",
        "LOGISTICS_QUEUE_URL",
        "WAREHOUSE_QUEUE_URL",
        "SERVICE_QUEUE_URL",
    ] {
        assert!(survey.contains(var), "survey requires {var}: {survey:?}");
    }
}

#[test]
fn no_iam_statement_allows_every_action_or_denies_by_exception() {
    let template = template();
    let statements = iam_statements(&template);
    assert!(!statements.is_empty());
    for (owner, statement) in statements {
        assert!(
            get(statement, "NotAction").is_none(),
            "{owner}: NotAction grants everything else"
        );
        assert!(
            get(statement, "NotResource").is_none(),
            "{owner}: NotResource"
        );
        for action in strings(get(statement, "Action")) {
            assert!(
                action != "*" && !action.ends_with(":*") && !action.ends_with('*'),
                "{owner}: wildcard action {action}"
            );
        }
    }
}

#[test]
fn only_actions_without_resource_level_permissions_have_resource_star() {
    // AWS documents "*" as the only resource for these (X-Ray; Step Functions log delivery).
    let unscoped: BTreeSet<&str> = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    ]
    .into();
    let template = template();
    for (owner, statement) in iam_statements(&template) {
        if strings(get(statement, "Resource")).iter().any(|r| r == "*") {
            for action in strings(get(statement, "Action")) {
                assert!(
                    unscoped.contains(action.as_str()),
                    "{owner}: {action} on Resource \"*\" (name the resource)"
                );
            }
        }
    }
}

#[test]
fn the_tables_are_exactly_the_stores_tables() {
    let template = template();
    let names = TableNames {
        tickets: "TicketsTable".into(),
        ledger: "LedgerTable".into(),
    };
    for table in table_definitions(&names) {
        let resource = resources(&template, "AWS::DynamoDB::Table")
            .into_iter()
            .find(|(id, _)| *id == table.name)
            .unwrap_or_else(|| panic!("the template has no {}", table.name))
            .1;
        let properties = get(resource, "Properties").expect("Properties");
        let id = &table.name;

        let keys = |schema: Option<&Value>| -> Vec<(String, String)> {
            schema
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .map(|k| {
                    (
                        get(k, "AttributeName").and_then(text).unwrap().to_owned(),
                        get(k, "KeyType").and_then(text).unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let mut expected_keys = vec![(table.hash_key.to_owned(), "HASH".to_owned())];
        expected_keys.extend(table.range_key.map(|r| (r.to_owned(), "RANGE".to_owned())));
        assert_eq!(
            keys(get(properties, "KeySchema")),
            expected_keys,
            "{id}: key schema"
        );

        let mut indexes = BTreeMap::new();
        for index in get(properties, "GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let projection = get(index, "Projection").expect("Projection");
            assert_eq!(
                get(projection, "ProjectionType").and_then(text),
                Some("INCLUDE")
            );
            let projected: BTreeSet<String> = strings(get(projection, "NonKeyAttributes"))
                .into_iter()
                .collect();
            indexes.insert(
                get(index, "IndexName").and_then(text).unwrap().to_owned(),
                (keys(get(index, "KeySchema")), projected),
            );
        }
        let expected: BTreeMap<String, IndexShape> = table
            .indexes
            .iter()
            .map(|i| {
                (
                    i.name.to_owned(),
                    (
                        vec![
                            (i.hash_key.to_owned(), "HASH".to_owned()),
                            (i.range_key.to_owned(), "RANGE".to_owned()),
                        ],
                        i.projected.iter().map(|a| (*a).to_owned()).collect(),
                    ),
                )
            })
            .collect();
        assert_eq!(indexes, expected, "{id}: global secondary indexes");

        let ttl = get(properties, "TimeToLiveSpecification")
            .and_then(|t| get(t, "AttributeName"))
            .and_then(text);
        assert_eq!(ttl, table.ttl_attribute, "{id}: TTL attribute");
        assert_eq!(
            get(properties, "BillingMode").and_then(text),
            Some("PAY_PER_REQUEST"),
            "{id}"
        );
    }
}

#[test]
fn the_template_grants_exactly_the_dynamodb_actions_the_store_calls() {
    // Each SDK call or transaction item of the DynamoDB store, and the IAM action it needs.
    let calls = [
        (".get_item()", "dynamodb:GetItem"),
        (".query()", "dynamodb:Query"),
        (".scan()", "dynamodb:Scan"),
        (".put_item()", "dynamodb:PutItem"),
        (".update_item()", "dynamodb:UpdateItem"),
        (".delete_item()", "dynamodb:DeleteItem"),
        (".batch_get_item()", "dynamodb:BatchGetItem"),
        (".batch_write_item()", "dynamodb:BatchWriteItem"),
        (".transact_get_items()", "dynamodb:GetItem"),
        ("Put::builder()", "dynamodb:PutItem"),
        ("Update::builder()", "dynamodb:UpdateItem"),
        ("Delete::builder()", "dynamodb:DeleteItem"),
        ("ConditionCheck::builder()", "dynamodb:ConditionCheckItem"),
        ("Get::builder()", "dynamodb:GetItem"),
    ];
    let mut used = BTreeSet::new();
    for file in rust_files(&root().join("functions/service/src/store/dynamo")) {
        // Table management (create_tables) is for tests and the local stack, never a function.
        if file.file_stem().is_some_and(|s| s == "tables") {
            continue;
        }
        let code = production_code(&file);
        for (call, action) in calls {
            if code.contains(call) {
                used.insert(action.to_owned());
            }
        }
    }
    let template = template();
    let granted: BTreeSet<String> = iam_statements(&template)
        .into_iter()
        .flat_map(|(_, s)| strings(get(s, "Action")))
        .filter(|a| a.starts_with("dynamodb:"))
        .collect();
    assert_eq!(
        granted, used,
        "DynamoDB actions granted (left) and called by the store (right)"
    );
}
