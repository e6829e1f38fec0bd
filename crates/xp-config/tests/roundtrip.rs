//! `load(save(c)) == c` for every valid config.

use proptest::prelude::*;
use xp_config::{Device, ExperimentConfig, ModelType, create_config};

fn device() -> impl Strategy<Value = Device> {
    prop_oneof![
        Just(Device::Auto),
        Just(Device::Cpu),
        Just(Device::Cuda(None)),
        (0u32..16).prop_map(|n| Device::Cuda(Some(n))),
    ]
}

fn model_type() -> impl Strategy<Value = ModelType> {
    prop_oneof![
        Just(ModelType::Vae),
        Just(ModelType::Autoregressive),
        Just(ModelType::Diffusion),
        Just(ModelType::Gnn),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn load_of_save_is_identity(
        name in "[a-zA-Z0-9 _\\-\"'é#=]{1,20}",
        output_dir in "[a-zA-Z0-9 _\\-\"'\\\\é#=/.]{1,20}",
        seed in 0..=xp_config::TOML_INT_MAX,
        device in device(),
        model_type in model_type(),
        hidden_dim in 32u32..=2048,
        dropout in 0.0f64..=0.5,
        epochs in 1u32..=1_000_000,
        learning_rate in 1e-6f64..=1.0,
        gradient_clip in 0.0f64..1e6,
        warmup_steps in 0..=xp_config::TOML_INT_MAX,
        with_test in any::<bool>(),
        max_length in 10u32..=500,
    ) {
        let mut c = create_config(None, &[] as &[&str]).unwrap();
        c.name = name;
        c.output_dir = output_dir;
        c.seed = seed;
        c.device = device;
        c.model.model_type = model_type;
        c.model.hidden_dim = hidden_dim;
        c.model.dropout = dropout;
        c.training.epochs = epochs;
        c.training.learning_rate = learning_rate;
        c.training.gradient_clip = gradient_clip;
        c.training.warmup_steps = warmup_steps;
        c.data.test_path = with_test.then(|| c.data.val_path.clone());
        c.data.max_length = max_length;
        c.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        c.save(&path).unwrap();
        let back = ExperimentConfig::load(&path).unwrap();
        prop_assert_eq!(&back, &c);
        // And again, from the loaded file (the comment-keeping path).
        back.save(&path).unwrap();
        prop_assert_eq!(ExperimentConfig::load(&path).unwrap(), c);
    }
}
