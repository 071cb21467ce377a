//! `tortie apply`, `tortie get` and `tortie delete`: argument parsing, reading the files,
//! printing what was done the way calicoctl prints it. Results go to stdout, warnings and
//! errors to stderr; the exit status is 0 on success and 1 on any error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value as Json;

use super::documents::{input_documents, list_document};
use super::kinds::{parse_kind, singular};
use super::snapshot::{get_resources, resources_from};
use super::{DatastoreError, StoreArgs, check_name, table};
use crate::config::{Config, Kind};

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// A file of resources (YAML or JSON; several documents, or a List), or a directory of
    /// *.yaml/*.yml/*.json files; `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Validate the files alone and print what would be applied; no datastore is opened.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table of the main fields (calicoctl's default columns).
    #[default]
    Table,
    /// The stored documents as YAML (a `<Kind>List` without NAME) that `tortie apply` takes back.
    Yaml,
    /// The same as JSON.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// node, bgpconfig, bgppeer, bgpfilter or ippool (any case, singular or plural).
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// One resource; all of the kind when left out.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// The kind of the resource to delete (as `tortie get` takes it).
    #[arg(
        value_name = "KIND",
        required_unless_present = "files",
        requires = "name"
    )]
    pub kind: Option<String>,
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Delete the resources a file names (its documents' kinds and names); `-` reads stdin.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "kind"
    )]
    pub files: Vec<PathBuf>,
    /// A resource that does not exist is not an error.
    #[arg(long)]
    pub skip_not_exists: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

const STDIN_LABEL: &str = "<stdin>";

/// The texts of the `-f` arguments, labelled by file name (`<stdin>` for `-`).
fn read_inputs(files: &[PathBuf]) -> Result<Vec<(String, String)>, DatastoreError> {
    let mut texts = Vec::new();
    let mut stdin_read = false;
    for path in files {
        if path == Path::new("-") {
            if stdin_read {
                return Err(DatastoreError::Usage("`-f -` given twice".into()));
            }
            stdin_read = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| DatastoreError::Read {
                    path: STDIN_LABEL.into(),
                    source,
                })?;
            texts.push((STDIN_LABEL.to_string(), text));
        } else if path.is_dir() {
            let found = list_dir(path)?;
            if found.is_empty() {
                return Err(DatastoreError::Usage(format!(
                    "{}: no *.yaml, *.yml or *.json files in this directory",
                    path.display()
                )));
            }
            for file in found {
                texts.push((file.display().to_string(), read_file(&file)?));
            }
        } else {
            texts.push((path.display().to_string(), read_file(path)?));
        }
    }
    Ok(texts)
}

fn read_file(path: &Path) -> Result<String, DatastoreError> {
    std::fs::read_to_string(path).map_err(|source| DatastoreError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A directory's resource files in name order, as the configuration loader reads them.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DatastoreError> {
    let read_err = |source| DatastoreError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let resource_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if path.is_file() && resource_file {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn borrowed(texts: &[(String, String)]) -> Vec<(&str, &str)> {
    texts
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect()
}

fn runtime() -> Result<tokio::runtime::Runtime, DatastoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DatastoreError::Usage(format!("cannot start the async runtime: {e}")))
}

/// Prints an error the way every command does and gives the failing exit status.
fn fail(command: &str, store: Option<&StoreArgs>, e: &DatastoreError) -> ExitCode {
    match e {
        DatastoreError::Config(errors) => {
            eprintln!("tortie {command}: invalid resources; nothing was written:");
            for err in errors.iter() {
                eprintln!("  {err}");
            }
        }
        DatastoreError::Store(err) => match store {
            Some(s) => eprintln!("tortie {command}: {} ({})", err, s.describe()),
            None => eprintln!("tortie {command}: {err}"),
        },
        other => eprintln!("tortie {command}: {other}"),
    }
    ExitCode::from(1)
}

pub fn run_apply(args: ApplyArgs) -> ExitCode {
    let texts = match read_inputs(&args.files) {
        Ok(t) => t,
        Err(e) => return fail("apply", None, &e),
    };
    let texts = borrowed(&texts);
    let inputs = input_documents(&texts);
    if inputs.documents.is_empty() && inputs.unreadable.is_empty() {
        let e = DatastoreError::Usage("no resources in the given files".into());
        return fail("apply", None, &e);
    }
    if args.dry_run {
        return dry_run(&texts);
    }
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = args.store.open().await?;
            super::apply(store.as_ref(), &texts).await
        })
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail("apply", Some(&args.store), &e),
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for a in &report.applied {
        println!("{}/{} {}", singular(a.kind), a.name, a.outcome.verb());
    }
    println!("Successfully applied {} resource(s)", report.applied.len());
    ExitCode::SUCCESS
}

/// `apply --dry-run`: the files validated on their own, nothing opened or written.
fn dry_run(texts: &[(&str, &str)]) -> ExitCode {
    let config = match Config::from_texts(texts) {
        Ok(c) => c,
        Err(e) => return fail("apply --dry-run", None, &e.into()),
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let inputs = input_documents(texts).documents;
    let validated: usize = texts
        .iter()
        .map(|(label, _)| resources_from(&config, label).len())
        .sum();
    if validated != inputs.len() {
        let e = DatastoreError::Usage(format!(
            "internal error: {validated} resources validated but {} found to store",
            inputs.len()
        ));
        return fail("apply --dry-run", None, &e);
    }
    for d in &inputs {
        println!("{}/{} would be applied", singular(d.kind), d.name);
    }
    println!(
        "Dry run: {} resource(s) valid, nothing written",
        inputs.len()
    );
    ExitCode::SUCCESS
}

pub fn run_get(args: GetArgs) -> ExitCode {
    let kind = match parse_kind(&args.kind) {
        Ok(k) => k,
        Err(e) => return fail("get", None, &e),
    };
    if let Some(name) = &args.name {
        if let Err(e) = check_name(name) {
            return fail("get", None, &e);
        }
    }
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = args.store.open().await?;
            get_resources(store.as_ref(), kind, args.name.as_deref()).await
        })
    });
    let resources = match result {
        Ok(r) => r,
        Err(e) => return fail("get", Some(&args.store), &e),
    };
    let output = match args.output {
        OutputFormat::Table => Ok(table::render(kind, &resources)),
        OutputFormat::Yaml => serde_yaml_ng::to_string(&output_document(kind, &args, resources))
            .map_err(|e| e.to_string()),
        OutputFormat::Json => {
            serde_json::to_string_pretty(&output_document(kind, &args, resources))
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
    };
    match output {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            "get",
            None,
            &DatastoreError::Usage(format!("cannot print the resources: {e}")),
        ),
    }
}

/// One document when a name was asked for (as calicoctl), else a `<Kind>List`.
fn output_document(kind: Kind, args: &GetArgs, resources: Vec<super::StoredResource>) -> Json {
    let mut docs: Vec<Json> = resources.into_iter().map(|r| r.document).collect();
    match (&args.name, docs.len()) {
        (Some(_), 1) => docs.remove(0),
        _ => list_document(kind, docs),
    }
}

pub fn run_delete(args: DeleteArgs) -> ExitCode {
    let targets = match delete_targets(&args) {
        Ok(t) => t,
        Err(e) => return fail("delete", None, &e),
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = args.store.open().await?;
            super::delete_resources(store.as_ref(), &targets).await
        })
    });
    let deleted = match result {
        Ok(d) => d,
        Err(e) => return fail("delete", Some(&args.store), &e),
    };
    let mut missing = 0;
    for d in &deleted {
        let what = format!("{}/{}", singular(d.kind), d.name);
        if d.existed {
            println!("{what} deleted");
        } else if args.skip_not_exists {
            println!("{what} not found (skipped)");
        } else {
            missing += 1;
            eprintln!("tortie delete: {what} not found");
        }
    }
    let done = deleted.iter().filter(|d| d.existed).count();
    println!("Successfully deleted {done} resource(s)");
    if missing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// KIND NAME, or every resource the files name (each once, in file order).
fn delete_targets(args: &DeleteArgs) -> Result<Vec<(Kind, String)>, DatastoreError> {
    if args.files.is_empty() {
        let (Some(kind), Some(name)) = (&args.kind, &args.name) else {
            return Err(DatastoreError::Usage("give KIND NAME, or -f FILE".into()));
        };
        let kind = parse_kind(kind)?;
        check_name(name)?;
        return Ok(vec![(kind, name.clone())]);
    }
    let texts = read_inputs(&args.files)?;
    let inputs = input_documents(&borrowed(&texts));
    if !inputs.unreadable.is_empty() {
        return Err(DatastoreError::Usage(format!(
            "cannot tell which resources to delete:\n  {}",
            inputs.unreadable.join("\n  ")
        )));
    }
    if inputs.documents.is_empty() {
        return Err(DatastoreError::Usage(
            "no resources in the given files".into(),
        ));
    }
    let mut targets: Vec<(Kind, String)> = Vec::new();
    for d in inputs.documents {
        check_name(&d.name)?;
        if !targets.iter().any(|(k, n)| *k == d.kind && *n == d.name) {
            targets.push((d.kind, d.name));
        }
    }
    Ok(targets)
}
