"""Optional LLM review of entry candidates (DeepSeek → Gemini → heuristic); see ``review``."""

from daytrading.llm.review import (
    CandidateReviewer,
    Review,
    ReviewResult,
    build_reviewer,
    heuristic_review,
)

__all__ = ["CandidateReviewer", "Review", "ReviewResult", "build_reviewer", "heuristic_review"]
