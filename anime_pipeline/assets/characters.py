"""Character assets, one set per character of every show: reference sheet → identity anchor → approved
dataset → character adapter (LoRA)."""

from anime_pipeline.assets.factory import ArtifactAsset
from anime_pipeline.production.approved_dataset import ApprovedDataset
from anime_pipeline.production.character_embedding import CharacterEmbedding
from anime_pipeline.production.character_lora import CharacterLora
from anime_pipeline.production.character_reference import CharacterReference

character_reference = ArtifactAsset(CharacterReference(), frozenset({"image"}))
character_embedding = ArtifactAsset(CharacterEmbedding(), frozenset({"numpy"}))
approved_dataset = ArtifactAsset(ApprovedDataset(), frozenset({"image"}))
character_lora = ArtifactAsset(CharacterLora(), frozenset({"json"}))

ASSETS = (character_reference, character_embedding, approved_dataset, character_lora)
