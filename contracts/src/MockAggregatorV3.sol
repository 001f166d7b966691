// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title MockAggregatorV3
/// @notice Settable Chainlink AggregatorV3Interface feed for tests and the demo.
/// @dev `setReverting(true)` imitates a shut-down feed: latestRoundData/getRoundData revert and
///      latestAnswer returns 0, as the retired Chainlink aggregators do.
contract MockAggregatorV3 {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint256 public constant version = 4;

    uint8 public decimals;
    string public description;
    bool public reverting;

    uint80 internal latestRoundId;
    mapping(uint80 => Round) internal rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        _pushRound(initialAnswer, block.timestamp, block.timestamp);
    }

    function setDecimals(uint8 decimals_) external {
        decimals = decimals_;
    }

    function setReverting(bool reverting_) external {
        reverting = reverting_;
    }

    /// @notice New round with `answer`, started and updated now.
    function setAnswer(int256 answer) external {
        _pushRound(answer, block.timestamp, block.timestamp);
    }

    /// @notice New round with explicit timestamps (stale or future-dated answers).
    function setRoundData(int256 answer, uint256 startedAt, uint256 updatedAt) external {
        _pushRound(answer, startedAt, updatedAt);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _roundData(latestRoundId);
    }

    function getRoundData(uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        require(roundId_ != 0 && roundId_ <= latestRoundId, "No data present");
        return _roundData(roundId_);
    }

    function latestAnswer() external view returns (int256) {
        return reverting ? int256(0) : rounds[latestRoundId].answer;
    }

    function _roundData(uint80 roundId_) internal view returns (uint80, int256, uint256, uint256, uint80) {
        require(!reverting, "MockAggregatorV3: feed disabled");
        Round storage r = rounds[roundId_];
        return (roundId_, r.answer, r.startedAt, r.updatedAt, roundId_);
    }

    function _pushRound(int256 answer, uint256 startedAt, uint256 updatedAt) internal {
        latestRoundId += 1;
        rounds[latestRoundId] = Round(answer, startedAt, updatedAt);
        emit AnswerUpdated(answer, latestRoundId, updatedAt);
    }
}
