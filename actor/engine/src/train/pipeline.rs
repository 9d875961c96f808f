//! The whole recipe of the embedded model as one function: corpus → tokenizer → token stream →
//! LLaMA → HF folder, plus a JSON record of everything needed to reproduce and judge it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tch::Kind;

use super::bpe;
use super::corpus::Corpus;
use super::export::{write_folder, Shape};
use super::lm::{self, StepLog, TrainOptions};
use crate::error::{Error, Result};

/// File in the model folder with the training record.
pub const RECORD_FILE: &str = "train_record.json";

/// What to train.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub shape: Shape,
    pub options: TrainOptions,
}

/// The training record written beside the model.
#[derive(Debug, Serialize)]
pub struct Record {
    pub corpus: String,
    pub corpus_documents: usize,
    pub corpus_bytes: usize,
    pub corpus_tokens: usize,
    pub shape: Shape,
    pub parameters: usize,
    pub options: TrainOptions,
    pub torch_threads: i32,
    pub tokenizer_s: f64,
    pub tokenize_s: f64,
    pub train_s: f64,
    /// Every step's loss, learning rate and gradient norm.
    pub steps: Vec<StepLog>,
}

/// Progress events, for the command line to show.
pub enum Progress<'a> {
    Stage(&'a str),
    Step(&'a StepLog, Duration),
}

/// Runs the recipe and writes `recipe.out` (model files and [`RECORD_FILE`]).
pub fn run(recipe: &Recipe, mut progress: impl FnMut(Progress<'_>)) -> Result<Record> {
    let corpus = Corpus::from_dir(&recipe.corpus)?;
    progress(Progress::Stage("training the tokenizer"));
    let t = Instant::now();
    let tokenizer = bpe::train(&corpus.documents, recipe.shape.vocab)?;
    let tokenizer_s = t.elapsed().as_secs_f64();
    progress(Progress::Stage("tokenizing the corpus"));
    let t = Instant::now();
    let mut stream: Vec<u16> = Vec::new();
    for doc in &corpus.documents {
        for id in bpe::encode_document(&tokenizer, doc)? {
            stream.push(
                u16::try_from(id)
                    .map_err(|_| Error::arg("vocab", "token ids must fit in 16 bits"))?,
            );
        }
    }
    let tokenize_s = t.elapsed().as_secs_f64();
    let cfg = recipe.shape.config()?;
    progress(Progress::Stage("training the model"));
    let t = Instant::now();
    // Training is compute-bound GEMM: torch gets the whole thread budget.
    let lent = crate::gemv::TorchThreads::lend();
    let torch_threads = tch::get_num_threads();
    let (params, steps) =
        lm::train(&cfg, &stream, &recipe.options, |s, eta| progress(Progress::Step(s, eta)))?;
    drop(lent);
    let train_s = t.elapsed().as_secs_f64();
    write_folder(&recipe.out, &recipe.shape, &tokenizer, &params.weights, Kind::BFloat16)?;
    let record = Record {
        corpus: recipe.corpus.display().to_string(),
        corpus_documents: corpus.documents.len(),
        corpus_bytes: corpus.bytes(),
        corpus_tokens: stream.len(),
        shape: recipe.shape.clone(),
        parameters: cfg.num_parameters(),
        options: recipe.options.clone(),
        torch_threads,
        tokenizer_s,
        tokenize_s,
        train_s,
        steps,
    };
    write_record(&recipe.out, &record)?;
    Ok(record)
}

fn write_record(out: &Path, record: &Record) -> Result<()> {
    let path = out.join(RECORD_FILE);
    let text = serde_json::to_string(record)
        .map_err(|source| Error::Json { path: path.clone(), source })?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
}
