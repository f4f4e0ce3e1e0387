//! The service integrations AWS offers behind `arn:aws:states:::SERVICE:ACTION` (without the
//! `.sync` / `.waitForTaskToken` suffix), so that a definition naming one that does not exist
//! is rejected as AWS rejects it. `aws-sdk:*` covers every SDK call; `kafka:produce` is
//! stepstream's own.

const OPTIMIZED: &[(&str, &[&str])] = &[
    ("lambda", &["invoke"]),
    ("sns", &["publish"]),
    ("sqs", &["sendMessage"]),
    (
        "dynamodb",
        &["getItem", "putItem", "updateItem", "deleteItem"],
    ),
    ("events", &["putEvents"]),
    ("states", &["startExecution"]),
    ("http", &["invoke"]),
    ("apigateway", &["invoke"]),
    ("ecs", &["runTask"]),
    ("batch", &["submitJob"]),
    ("glue", &["startJobRun"]),
    ("glue-databrew", &["startJobRun"]),
    ("mediaconvert", &["createJob"]),
    ("bedrock", &["invokeModel", "createModelCustomizationJob"]),
    (
        "athena",
        &[
            "startQueryExecution",
            "stopQueryExecution",
            "getQueryExecution",
            "getQueryResults",
        ],
    ),
    (
        "codebuild",
        &[
            "startBuild",
            "stopBuild",
            "batchDeleteBuilds",
            "batchGetReports",
            "startBuildBatch",
        ],
    ),
    (
        "sagemaker",
        &[
            "createTrainingJob",
            "createTransformJob",
            "createModel",
            "createEndpointConfig",
            "createEndpoint",
            "updateEndpoint",
            "createHyperParameterTuningJob",
            "createLabelingJob",
            "createProcessingJob",
        ],
    ),
    (
        "elasticmapreduce",
        &[
            "createCluster",
            "terminateCluster",
            "addStep",
            "cancelStep",
            "setClusterTerminationProtection",
            "modifyInstanceFleetByName",
            "modifyInstanceGroupByName",
        ],
    ),
    (
        "emr-containers",
        &[
            "startJobRun",
            "createVirtualCluster",
            "deleteVirtualCluster",
        ],
    ),
    (
        "emr-serverless",
        &[
            "createApplication",
            "startApplication",
            "stopApplication",
            "deleteApplication",
            "startJobRun",
            "cancelJobRun",
        ],
    ),
    (
        "eks",
        &[
            "createCluster",
            "deleteCluster",
            "createFargateProfile",
            "deleteFargateProfile",
            "createNodegroup",
            "deleteNodegroup",
            "runJob",
            "call",
        ],
    ),
    ("kafka", &["produce"]),
];

/// Whether `service:action` names an integration.
pub fn is_known(integration: &str) -> bool {
    let Some((service, action)) = integration.split_once(':') else {
        return false;
    };
    if service == "aws-sdk" {
        // aws-sdk:SERVICE:ACTION
        return action
            .split_once(':')
            .is_some_and(|(s, a)| !s.is_empty() && !a.is_empty());
    }
    OPTIMIZED
        .iter()
        .any(|(s, actions)| *s == service && actions.contains(&action))
}

#[cfg(test)]
mod tests {
    use super::is_known;

    #[test]
    fn knows_the_integrations_aws_offers() {
        assert!(is_known("lambda:invoke"));
        assert!(is_known("dynamodb:putItem"));
        assert!(is_known("aws-sdk:s3:getObject"));
        assert!(is_known("kafka:produce"));
        // From the corpus: AWS rejects the optimized dynamodb:query.
        assert!(!is_known("dynamodb:query"));
        assert!(!is_known("aws-sdk:s3"));
        assert!(!is_known("nothing"));
    }
}
