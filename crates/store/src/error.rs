#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store schema version {found} is not the supported version {expected}; move the store aside or purge it")]
    Schema { found: u32, expected: u32 },
    #[error("store entry {0} could not be decoded")]
    Corrupt(String),
    #[error("store entry could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}
